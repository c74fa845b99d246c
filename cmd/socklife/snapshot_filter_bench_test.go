package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
)

// BenchmarkSnapshotFilterVsSS times `socklife snapshot -tan FILTER` against
// `ss -tan FILTER` over the same sockets, for two filters: one keeping the
// first holder's connections (a sixth of them at 50,000), one keeping
// none. Both tools send the filter as bytecode, so the kernel drops what
// does not match; the commands alternate within each round, rotating
// which goes first:
//
//	go test -run '^$' -bench SnapshotFilterVsSS -benchtime 7x ./cmd/socklife
func BenchmarkSnapshotFilterVsSS(b *testing.B) {
	testutil.RequireRoot(b)
	ss, err := exec.LookPath("ss")
	if err != nil {
		b.Fatalf("the benchmark compares with ss (iproute2): %v", err)
	}
	socklife := buildSocklife(b)
	conns := benchSockets(b)
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

	var tm testutil.Timings
	for round := 0; b.Loop(); round++ {
		for i := range contenders {
			c := contenders[(round+i)%len(contenders)]
			tm.Add(c.name, timeCommand(b, c.argv))
		}
	}
	for _, f := range filters {
		b.ReportMetric(float64(tm.Median("socklife "+f.name))/float64(time.Millisecond), "socklife-"+f.name+"-ms")
		b.ReportMetric(float64(tm.Median("ss "+f.name))/float64(time.Millisecond), "ss-"+f.name+"-ms")
		b.ReportMetric(tm.Ratio("socklife "+f.name, "ss "+f.name), "ratio-"+f.name)
	}
	b.Logf("%d loopback TCP connections (%d sockets), %d rounds; some = %q keeps %d sockets:\n%s",
		conns.N, conns.Sockets(), len(tm.Samples(contenders[0].name)), some, 2*h.Conns, tm.Table())
}
