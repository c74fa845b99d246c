package snapshot

import (
	"context"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// The benchmarks here list testutil.OpenBenchConns' sockets. Run them in a
// namespace of their own so other tests' sockets do not blur the numbers:
//
//	ip netns add bench && ip -n bench link set lo up
//	ip netns exec bench go test -run '^$' -bench 'Dump' -benchtime 15x ./snapshot

var benchOpts = Options{TCP: true, States: tcpstate.All}

func timeDump(b *testing.B, opts Options, min int) time.Duration {
	start := time.Now()
	res, err := Dump(context.Background(), opts)
	d := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if len(res.Sockets) < min {
		b.Fatalf("Dump listed %d sockets, want at least %d", len(res.Sockets), min)
	}
	return d
}

func timeSS(b *testing.B, args ...string) time.Duration {
	start := time.Now()
	if err := exec.Command("ss", args...).Run(); err != nil {
		b.Fatalf("ss %v: %v", args, err)
	}
	return time.Since(start)
}

// BenchmarkDumpVsSS times Dump of every TCP socket against `ss -tan` on the
// same sockets, alternating them in each round. ss forks, prints and exits
// too, so this bounds the decoding cost from above; the end-to-end
// comparison of the binaries is cmd/socklife's BenchmarkSnapshotVsSS.
func BenchmarkDumpVsSS(b *testing.B) {
	conns := testutil.OpenBenchConns(b)
	var tm testutil.Timings
	for round := 0; b.Loop(); round++ {
		if round%2 == 0 {
			tm.Add("Dump", timeDump(b, benchOpts, conns.Sockets()))
			tm.Add("ss", timeSS(b, "-tan"))
		} else {
			tm.Add("ss", timeSS(b, "-tan"))
			tm.Add("Dump", timeDump(b, benchOpts, conns.Sockets()))
		}
	}
	b.ReportMetric(float64(tm.Median("Dump").Microseconds())/1000, "dump-median-ms")
	b.ReportMetric(float64(tm.Median("ss").Microseconds())/1000, "ss-median-ms")
	b.ReportMetric(tm.Ratio("Dump", "ss"), "dump/ss")
	b.ReportMetric(float64(maxRSS())/1024, "maxrss-MiB")
	b.Logf("%d sockets\n%s", conns.Sockets(), tm.Table())
}

// BenchmarkDumpWorkers checks that running the IPv4 and IPv6 walks at once
// pays: one worker against two, alternating.
func BenchmarkDumpWorkers(b *testing.B) {
	conns := testutil.OpenBenchConns(b)
	defer func(n int) { dumpWorkers = n }(dumpWorkers)
	var tm testutil.Timings
	for b.Loop() {
		for _, w := range []int{1, 2} {
			dumpWorkers = w
			tm.Add("workers="+strconv.Itoa(w), timeDump(b, benchOpts, conns.Sockets()))
		}
	}
	b.ReportMetric(tm.Ratio("workers=2", "workers=1"), "2/1")
	b.Logf("%d sockets\n%s", conns.Sockets(), tm.Table())
}

// BenchmarkDumpAllocs reports allocations per Dump: the goal is one slice
// of Sockets, not one allocation per socket.
func BenchmarkDumpAllocs(b *testing.B) {
	conns := testutil.OpenBenchConns(b)
	b.ReportAllocs()
	for b.Loop() {
		timeDump(b, benchOpts, conns.Sockets())
	}
}

// maxRSS is this process's peak resident set in KiB.
func maxRSS() int64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Maxrss
}
