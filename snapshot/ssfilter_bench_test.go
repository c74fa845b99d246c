package snapshot

import (
	"fmt"
	"testing"

	"github.com/socklife/socklife/internal/ssfilter"
	"github.com/socklife/socklife/internal/testutil"
)

// BenchmarkDumpSSFilterVsSS times Dump with an ss filter that keeps the
// first holder's connections against ss -tan with the same filter, and
// against Dump without the filter, alternating them in each round:
//
//	go test -run '^$' -bench DumpSSFilter -benchtime 15x ./snapshot
func BenchmarkDumpSSFilterVsSS(b *testing.B) {
	conns := testutil.OpenBenchConns(b)
	h := conns.Holders[0]
	expr := fmt.Sprintf("( dport = :%d or sport = :%d )", h.Listener.Port(), h.Listener.Port())
	f, err := ssfilter.ParseString(expr, nil)
	if err != nil {
		b.Fatal(err)
	}
	filtered := benchOpts
	filtered.SSFilter = f
	var tm testutil.Timings
	for round := 0; b.Loop(); round++ {
		steps := []func(){
			func() { tm.Add("Dump filtered", timeDump(b, filtered, 2*h.Conns+1)) },
			func() { tm.Add("ss -tan filtered", timeSS(b, "-tan", expr)) },
			func() { tm.Add("Dump all", timeDump(b, benchOpts, conns.Sockets())) },
		}
		for i := range steps {
			steps[(round+i)%len(steps)]()
		}
	}
	b.ReportMetric(float64(tm.Median("Dump filtered").Microseconds())/1000, "dump-filtered-median-ms")
	b.ReportMetric(float64(tm.Median("ss -tan filtered").Microseconds())/1000, "ss-filtered-median-ms")
	b.ReportMetric(tm.Ratio("Dump filtered", "ss -tan filtered"), "dump/ss")
	b.Logf("%d sockets, %q keeps %d\n%s", conns.Sockets(), expr, 2*h.Conns+1, tm.Table())
}
