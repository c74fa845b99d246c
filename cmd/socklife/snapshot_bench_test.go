package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
)

// contender is one command line the benchmark times.
type contender struct {
	name string
	argv []string
}

// BenchmarkSnapshotVsSS times `socklife snapshot` against ss over the same
// sockets, without and with owning processes, alternating the four commands
// within each round (rotating which goes first) so that they share the
// machine's state. Run it with a fixed, odd count of rounds; at 100,000
// sockets ss -tanp alone takes 5-15 s a run here (its owner table has 256
// hash buckets), so 7 rounds take about three minutes:
//
//	go test -run '^$' -bench SnapshotVsSS -benchtime 7x ./cmd/socklife
//
// It reports each command's median, socklife's median over ss's, and the
// peak RSS of socklife, and logs a table for the README.
func BenchmarkSnapshotVsSS(b *testing.B) {
	ss, socklife, conns := againstSS(b)
	contenders := []contender{
		{"socklife snapshot -t -a --no-process", []string{socklife, "snapshot", "-t", "-a", "--no-process"}},
		{"ss -tan", []string{ss, "-tan"}},
		{"socklife snapshot -t -a", []string{socklife, "snapshot", "-t", "-a"}},
		{"ss -tanp", []string{ss, "-tanp"}},
	}
	// A first round, not timed, checks that each command lists every socket
	// the holders made, measures peak RSS, and warms the dentry cache for
	// /proc/PID/fd.
	peakRSS := map[string]int64{} // KiB
	for _, c := range contenders {
		lines, rss := measureRSS(b, c.argv)
		if lines < conns.Sockets() {
			b.Fatalf("%s listed %d lines, want at least the %d sockets held", c.name, lines, conns.Sockets())
		}
		peakRSS[c.name] = rss
	}

	tm := timeRounds(b, contenders)
	names := func(i int) string { return contenders[i].name }
	b.ReportMetric(tm.Ratio(names(0), names(1)), "ratio-noproc")
	b.ReportMetric(tm.Ratio(names(2), names(3)), "ratio-proc")
	b.ReportMetric(float64(max(peakRSS[names(0)], peakRSS[names(2)]))/1024, "peak-rss-MiB")
	for i, metric := range []string{"socklife-noproc-ms", "ss-tan-ms", "socklife-proc-ms", "ss-tanp-ms"} {
		b.ReportMetric(float64(tm.Median(names(i)))/float64(time.Millisecond), metric)
	}
	rss := testutil.Column{Header: "peak RSS", Value: func(name string) string {
		return fmt.Sprintf("%.1f MiB", float64(peakRSS[name])/1024)
	}}
	// One Logf: go test shows only the first lines of a benchmark's log.
	b.Logf("%d loopback TCP connections (%d sockets) in %d holders, %d rounds, output to /dev/null:\n%s"+
		"socklife / ss (medians): %.2f without owners, %.2f with owners",
		conns.N, conns.Sockets(), len(conns.Holders), len(tm.Samples(names(0))), tm.Table(rss),
		tm.Ratio(names(0), names(1)), tm.Ratio(names(2), names(3)))
}

// BenchmarkSnapshotFilterVsSS times `socklife snapshot -tan FILTER` against
// `ss -tan FILTER` over the same sockets, for two filters: one keeping the
// first holder's connections (a sixth of them at 50,000), one keeping
// none. Both tools send the filter as bytecode, so the kernel drops what
// does not match; the commands alternate within each round, rotating
// which goes first:
//
//	go test -run '^$' -bench SnapshotFilterVsSS -benchtime 7x ./cmd/socklife
func BenchmarkSnapshotFilterVsSS(b *testing.B) {
	ss, socklife, conns := againstSS(b)
	h := conns.Holders[0]
	some := fmt.Sprintf("( dport = :%d or sport = :%d )", h.Listener.Port(), h.Listener.Port())
	filters := []struct {
		name string
		args []string
		want int // lines each must print (with a header line)
	}{
		{"some", []string{"state", "established", some}, 2*h.Conns + 1},
		{"none", []string{"dst 10.255.255.1 and dport = :9"}, 1},
	}
	var contenders []contender
	for _, f := range filters {
		contenders = append(contenders,
			contender{"socklife " + f.name, append([]string{socklife, "snapshot", "-tan", "--no-process"}, f.args...)},
			contender{"ss " + f.name, append([]string{ss, "-tan"}, f.args...)})
	}
	// An untimed round checks that both list what the filter keeps.
	for i, c := range contenders {
		out, err := exec.Command(c.argv[0], c.argv[1:]...).Output()
		if err != nil {
			b.Fatalf("%s: %v", strings.Join(c.argv, " "), err)
		}
		if lines := strings.Count(string(out), "\n"); lines != filters[i/2].want {
			b.Fatalf("%s printed %d lines, want %d", c.name, lines, filters[i/2].want)
		}
	}

	tm := timeRounds(b, contenders)
	for _, f := range filters {
		b.ReportMetric(float64(tm.Median("socklife "+f.name))/float64(time.Millisecond), "socklife-"+f.name+"-ms")
		b.ReportMetric(float64(tm.Median("ss "+f.name))/float64(time.Millisecond), "ss-"+f.name+"-ms")
		b.ReportMetric(tm.Ratio("socklife "+f.name, "ss "+f.name), "ratio-"+f.name)
	}
	b.Logf("%d loopback TCP connections (%d sockets), %d rounds; some = %q keeps %d sockets:\n%s",
		conns.N, conns.Sockets(), len(tm.Samples(contenders[0].name)), some, 2*h.Conns, tm.Table())
}

// againstSS returns what the snapshot benchmarks need: ss, socklife built
// as a user would, and testutil.OpenBenchConns' connections for both to list.
func againstSS(b *testing.B) (ss, socklife string, conns *testutil.Conns) {
	ss, err := exec.LookPath("ss")
	if err != nil {
		b.Fatalf("the benchmark compares with ss (iproute2): %v", err)
	}
	return ss, buildSocklife(b), testutil.OpenBenchConns(b)
}

// timeRounds times every contender once a round, rotating which goes first
// so that they share the machine's state.
func timeRounds(b *testing.B, contenders []contender) *testutil.Timings {
	var tm testutil.Timings
	for round := 0; b.Loop(); round++ {
		for i := range contenders {
			c := contenders[(round+i)%len(contenders)]
			tm.Add(c.name, timeCommand(b, c.argv))
		}
	}
	return &tm
}

// buildSocklife builds the command in this directory once, as a user would.
func buildSocklife(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "socklife")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		tb.Fatalf("building socklife: %v\n%s", err, out)
	}
	return bin
}

// timeCommand runs argv with its output to /dev/null, as a user pipes a big
// listing away, and returns the wall time from start to exit.
func timeCommand(tb testing.TB, argv []string) time.Duration {
	tb.Helper()
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer devnull.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = devnull, &stderr
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if err != nil {
		tb.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, stderr.Bytes())
	}
	return took
}

// measureRSS runs argv and returns how many lines it printed and its peak
// RSS in KiB. The ru_maxrss that os/exec's ProcessState reports would be
// wrong: os/exec starts children with vfork, so at exec the kernel folds the
// RSS high-water mark of this test binary into the child's. GNU time forks
// from its own small address space (about 1 MiB) and reports the child alone.
func measureRSS(tb testing.TB, argv []string) (lines int, kib int64) {
	tb.Helper()
	gnuTime, err := exec.LookPath("time")
	if err != nil {
		tb.Fatalf("measuring peak RSS needs GNU time (Debian package time): %v", err)
	}
	report := filepath.Join(tb.TempDir(), "rss")
	var stderr bytes.Buffer
	cmd := exec.Command(gnuTime, append([]string{"-f", "%M", "-o", report}, argv...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, stderr.Bytes())
	}
	b, err := os.ReadFile(report)
	if err != nil {
		tb.Fatal(err)
	}
	if kib, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
		tb.Fatalf("GNU time printed %q, want the peak RSS in KiB", b)
	}
	return bytes.Count(out, []byte{'\n'}), kib
}
