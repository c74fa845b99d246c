package main

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/churn"
	"github.com/socklife/socklife/internal/testutil"
)

// BenchmarkRecordChurn measures what `socklife record` costs a host that
// opens and closes loopback connections as fast as it can: the churn's rate
// with no tracer and under record (writing to tmpfs), interleaved round
// after round, and whether record kept every connection (two records each).
// It reports the median rates and their ratio:
//
//	go test -run '^$' -bench RecordChurn -benchtime 1x ./cmd/socklife
func BenchmarkRecordChurn(b *testing.B) {
	testutil.RequireRoot(b)
	const conns, rounds = 20000, 5
	gen, err := churn.New(churn.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer gen.Close()
	dir := benchOutDir(b)
	var off, on []float64
	for round := range rounds {
		res, err := gen.Run(context.Background(), conns)
		if err != nil {
			b.Fatal(err)
		}
		off = append(off, res.Rate())
		path := filepath.Join(dir, "rec"+strconv.Itoa(round))
		r := startRecord(b, path, "--port", strconv.Itoa(int(gen.Port())))
		if res, err = gen.Run(context.Background(), conns); err != nil {
			b.Fatal(err)
		}
		on = append(on, res.Rate())
		r.cmd.Process.Signal(syscall.SIGTERM)
		r.wait(b, 30*time.Second)
		if m := recordSummary.FindStringSubmatch(r.stderr.String()); m == nil || m[1] != strconv.Itoa(2*conns) {
			b.Errorf("round %d: %q, want %d records and no loss", round, r.stderr.String(), 2*conns)
		}
	}
	b.ReportMetric(medianRate(off), "conns/s-off")
	b.ReportMetric(medianRate(on), "conns/s-record")
	b.ReportMetric(medianRate(on)/medianRate(off), "ratio")
}

func medianRate(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}
