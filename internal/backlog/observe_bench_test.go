package backlog

import (
	"context"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/tracer"
)

// BenchmarkObserve is the accounting of one connection's queue events: an
// enqueue and an accept (the other events of a connection are skipped
// before any lock).
func BenchmarkObserve(b *testing.B) {
	a := NewAccounting(Config{}, t0)
	enq, acc := enqueue(0, 1, 0), accept(1, 0, time.Millisecond)
	i := 0
	for b.Loop() {
		i++
		enq.Time, acc.Time = at(i), at(i)
		a.Observe(enq)
		a.Observe(acc)
		if i%100000 == 0 {
			a.Tick(at(i))
		}
	}
}

// BenchmarkPoll is one interval's fixed cost: the dump of listeners, the
// netns counters and the report.
func BenchmarkPoll(b *testing.B) {
	testutil.RequireRoot(b)
	tr, err := tracer.New(tracer.Options{Backlog: true})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	m := &monitor{seed: tr.SeedListeners, loss: tr.Loss, acc: NewAccounting(Config{}, time.Now()), tried: map[Key]bool{}}
	for b.Loop() {
		if err := m.report(context.Background(), time.Now(), func(*Report) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
