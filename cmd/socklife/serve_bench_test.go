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
// tracer, `socklife trace -o json` and bpftrace's tcpstates one-liner,
// interleaved round after round so that they share the machine's noise. It
// reports each one's median ratio to the no-tracer rate of the same round:
//
//	go test -v -run '^$' -bench ServeChurn -benchtime 1x ./cmd/socklife
//
// serve runs twice: scraped every 30 s, as deploy/'s PodMonitor has it
// (so no scrape falls in a run of a few seconds: that is what being always
// on costs), and scraped every second. A scrape counts every socket, and
// the churn leaves ~100,000 in TIME_WAIT: each scrape costs tens of ms,
// which at 1 Hz is a cost of its own, set by the scrape interval.
//
// SOCKLIFE_BENCH_CHURN_CONNS and SOCKLIFE_BENCH_ROUNDS as for
// BenchmarkTraceChurn; SOCKLIFE_BENCH_SERVE_ARGS adds serve with those
// arguments (scraped every 30 s) as one more configuration.
func BenchmarkServeChurn(b *testing.B) {
	testutil.RequireRoot(b)
	conns, rounds := testutil.EnvInt(b, "SOCKLIFE_BENCH_CHURN_CONNS", churnConns), testutil.EnvInt(b, "SOCKLIFE_BENCH_ROUNDS", churnRounds)
	tracers := []churnTracer{{name: "off"}, serveTracer(b, "serve", deployedScrapeInterval, nil),
		serveTracer(b, "serve, scraped every 1s", time.Second, nil), socklifeTracer(b, "trace", nil), bpftraceTracer(b)}
	if extra := os.Getenv("SOCKLIFE_BENCH_SERVE_ARGS"); extra != "" {
		// a variant beside, e.g. "--accept-wait on": serve with the
		// accept hook's syscall tracepoint
		tracers = append(tracers, serveTracer(b, "serve "+extra, deployedScrapeInterval, strings.Fields(extra)))
	}
	gen, err := churn.New(churn.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { gen.Close() })
	dir := benchOutDir(b)
	sink := benchSink(b)
	samples := interleaveChurn(b, gen, tracers, dir, conns, rounds, sink)
	progs := progCosts(b, gen, tracers[1:], dir, conns, sink)
	var table strings.Builder
	fmt.Fprintf(&table, "%-40s %8s %7s %15s %9s %9s\n", "", "conn/s", "vs off", "(middle half)", "CPU/conn", "BPF/conn")
	for _, tr := range tracers {
		var rates, ratios, cpu []float64
		for i, s := range samples[tr.name] {
			rates = append(rates, s.rate)
			ratios = append(ratios, s.rate/samples["off"][i].rate)
			cpu = append(cpu, float64(s.cpu)/float64(conns))
		}
		ratio := churnMedian(ratios)
		var bpf time.Duration
		for _, p := range progs[tr.name] {
			bpf += p.runtime
		}
		lo, hi := churnQuartiles(ratios)
		fmt.Fprintf(&table, "%-40s %8.0f %7.3f %7.3f-%.3f %9v %9v\n", tr.name, churnMedian(rates), ratio, lo, hi,
			time.Duration(churnMedian(cpu)).Round(10*time.Nanosecond), (bpf / time.Duration(conns)).Round(10*time.Nanosecond))
		if tr.name != "off" {
			// a unit has no spaces or commas
			b.ReportMetric(ratio, strings.Join(strings.Fields(strings.ReplaceAll(tr.name, ",", "")), "_")+"/off")
		}
	}
	b.Logf("loopback churn, %d connections a run, medians of %d interleaved rounds (the middle half of the rounds' ratios beside); "+
		"the tracer's own CPU a connection (median), and its BPF programs' run time a connection in one more run with bpf_stats on:\n%s",
		conns, rounds, table.String())
}

// deployedScrapeInterval is the PodMonitor's in deploy/podmonitor.yaml.
const deployedScrapeInterval = 30 * time.Second

// serveTracer runs `socklife serve` (with extra arguments) on a free
// loopback port, scraped every scrapeEvery until it stops.
func serveTracer(tb testing.TB, name string, scrapeEvery time.Duration, extra []string) churnTracer {
	bin := buildSocklife(tb)
	return churnTracer{
		name: name,
		start: func(tb testing.TB, dir string, port uint16, sink sinkKind, mark string) *benchTracer {
			p, base := startServeBench(tb, bin, dir, sink, mark, extra)
			go func() {
				tick := time.NewTicker(scrapeEvery)
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
