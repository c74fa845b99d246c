package tracer

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/testutil"
)

// churn makes n loopback connections to ln (connect, close, accept, close).

// progCost is the mean time one run of the state program took, from the
// kernel's own accounting (kernel.bpf_stats_enabled).
func progCost(tb testing.TB, tr *Tracer) time.Duration {
	tb.Helper()
	for _, c := range tr.progs {
		for _, name := range []string{socklifeProgBtfState, socklifeProgRawState, socklifeProgTpState} {
			if p := c.Programs[name]; p != nil {
				st, err := p.Stats()
				if err != nil {
					tb.Fatal(err)
				}
				if st.RunCount == 0 {
					tb.Fatalf("%s never ran", name)
				}
				return st.Runtime / time.Duration(st.RunCount)
			}
		}
	}
	tb.Fatal("no state program loaded")
	return 0
}

// BenchmarkStateHook measures what each state-change hook costs per
// transition inside the kernel, interleaving them so that all see the same
// machine. It is how the ladder's order was chosen. The kernel's run-time
// stats leave out what a tracepoint costs before the program runs (filling
// its event record), so the churn's time per connection is reported too;
// the tracepoint variant keeps the accept hook when that is a syscall
// tracepoint (as here), which adds to its connection time.
func BenchmarkStateHook(b *testing.B) {
	testutil.RequireRoot(b)
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enabling BPF run-time stats: %v", err)
	}
	defer stats.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	const rounds, conns = 7, 2000
	cost := map[string][]time.Duration{}
	wall := map[string][]time.Duration{} // per connection, the whole churn: also what the kernel spends around the program
	variants := []struct {
		name    string
		disable []string
	}{
		{"tp_btf", []string{"raw_tracepoint", "tracepoint"}},
		{"raw_tracepoint", []string{"tp_btf", "tracepoint"}},
		{"tracepoint", []string{"tp_btf", "raw_tracepoint"}},
	}
	for range b.N {
		for range rounds {
			for _, v := range variants {
				tr, err := New(Options{DisableHooks: v.disable})
				if err != nil {
					b.Fatal(err)
				}
				if got := tr.Hooks()[0]; got.Hook.String() != v.name {
					b.Fatalf("state hook %v, want %s", got, v.name)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- tr.Read(ctx, func(*Event) error { return nil }) }()
				start := time.Now()
				testutil.Churn(b, ln, conns)
				wall[v.name] = append(wall[v.name], time.Since(start)/conns)
				cost[v.name] = append(cost[v.name], progCost(b, tr))
				cancel()
				<-done
				tr.Close()
			}
		}
	}
	btfRun, raw, tp := median(cost["tp_btf"]), median(cost["raw_tracepoint"]), median(cost["tracepoint"])
	b.ReportMetric(float64(btfRun.Nanoseconds()), "ns/tp_btf-run")
	b.ReportMetric(float64(raw.Nanoseconds()), "ns/raw_tracepoint-run")
	b.ReportMetric(float64(tp.Nanoseconds()), "ns/tracepoint-run")
	b.ReportMetric(float64(tp)/float64(btfRun), "tracepoint/tp_btf")
	b.ReportMetric(float64(raw)/float64(btfRun), "raw_tracepoint/tp_btf")
	btfWall, rawWall, tpWall := median(wall["tp_btf"]), median(wall["raw_tracepoint"]), median(wall["tracepoint"])
	b.ReportMetric(float64(tpWall)/float64(btfWall), "conn-time-tracepoint/tp_btf")
	b.ReportMetric(float64(rawWall)/float64(btfWall), "conn-time-raw_tracepoint/tp_btf")
	b.Logf("medians over %d rounds of %d connections: program run tp_btf %v, raw_tracepoint %v, tracepoint %v; connection tp_btf %v, raw_tracepoint %v, tracepoint %v",
		rounds*b.N, conns, btfRun, raw, tp, btfWall, rawWall, tpWall)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
