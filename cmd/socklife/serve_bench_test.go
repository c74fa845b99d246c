package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/churn"
	"github.com/socklife/socklife/internal/testutil"
)

// BenchmarkServeChurn measures what `socklife serve` costs the loopback
// churn (connect, a byte each way, close, as fast as it goes), beside no
// tracer, `socklife trace -o json` and bpftrace's tcpstates one-liner, interleaved round after round so
// that they share the machine's noise; serve is scraped every second, as a
// Prometheus with a 1s interval would. It reports each one's median ratio
// to the no-tracer rate of the same round:
//
//	go test -v -run '^$' -bench ServeChurn -benchtime 1x ./cmd/socklife
//
// SOCKLIFE_BENCH_CHURN_CONNS and SOCKLIFE_BENCH_ROUNDS as for
// BenchmarkTraceChurn; SOCKLIFE_BENCH_SERVE_ARGS adds serve with those
// arguments as a fourth configuration.
func BenchmarkServeChurn(b *testing.B) {
	testutil.RequireRoot(b)
	conns, rounds := testutil.EnvInt(b, "SOCKLIFE_BENCH_CHURN_CONNS", churnConns), testutil.EnvInt(b, "SOCKLIFE_BENCH_ROUNDS", churnRounds)
	tracers := []churnTracer{{name: "off"}, serveTracer(b, "serve", nil), socklifeTracer(b, "trace", nil), bpftraceTracer(b)}
	if extra := os.Getenv("SOCKLIFE_BENCH_SERVE_ARGS"); extra != "" {
		// a variant beside, e.g. "--disable-hook tracepoint": serve
		// without the accept hook's syscall tracepoint
		tracers = append(tracers, serveTracer(b, "serve "+extra, strings.Fields(extra)))
	}
	gen, err := churn.New(churn.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { gen.Close() })
	dir := benchOutDir(b)
	sink := benchSink(b)
	samples := interleaveChurn(b, gen, tracers, dir, conns, rounds, sink)
	var table strings.Builder
	fmt.Fprintf(&table, "%-40s %12s %8s\n", "", "conn/s", "vs off")
	for _, tr := range tracers {
		var rates, ratios []float64
		for i, s := range samples[tr.name] {
			rates = append(rates, s.rate)
			ratios = append(ratios, s.rate/samples["off"][i].rate)
		}
		ratio := churnMedian(ratios)
		fmt.Fprintf(&table, "%-40s %12.0f %8.3f\n", tr.name, churnMedian(rates), ratio)
		if tr.name != "off" {
			b.ReportMetric(ratio, strings.Join(strings.Fields(tr.name), "_")+"/off") // a unit has no spaces
		}
	}
	b.Logf("loopback churn, %d connections a run, medians of %d interleaved rounds:\n%s", conns, rounds, table.String())
}

// serveTracer runs `socklife serve` (with extra arguments) on a free
// loopback port, scraped every second until it stops.
func serveTracer(tb testing.TB, name string, extra []string) churnTracer {
	bin := buildSocklife(tb)
	return churnTracer{
		name: name,
		start: func(tb testing.TB, dir string, port uint16, sink sinkKind, mark string) *benchTracer {
			p, base := startServeBench(tb, bin, dir, sink, mark, extra)
			go func() {
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					select {
					case <-p.exited:
						return
					case <-tick.C:
					}
					if resp, err := http.Get(base + "/metrics"); err == nil {
						resp.Body.Close()
					}
				}
			}()
			return p
		},
		events:   func(testing.TB, *benchTracer, outputCounts) (int64, int64) { return 0, 0 },
		portMark: func(port uint16) string { return fmt.Sprintf(":%d", port) },
	}
}

// startServeBench starts `socklife serve` (with extra arguments) on a free
// loopback port, its output to sink, and returns it once its ready file is
// written, with the base URL it serves on (answering may take a moment
// more: the ready file comes before the listening).
func startServeBench(tb testing.TB, bin, dir string, sink sinkKind, mark string, extra []string) (*benchTracer, string) {
	tb.Helper()
	ready := filepath.Join(dir, "serve.ready")
	os.Remove(ready)
	addr := "127.0.0.1:" + strconv.Itoa(int(testutil.FreePort(tb)))
	p := startBenchTracer(tb, dir, append([]string{bin, "serve", "--web.listen-address", addr, "--ready-file", ready}, extra...), sink, ready, "", mark)
	return p, "http://" + addr
}
