package backlog

import (
	"time"

	"github.com/socklife/socklife/tracer"
)

// WaitBuckets are the upper bounds of WaitHistogram's buckets, the ones
// the kernel counts into under serve (tracer.AcceptWaitBuckets).
var WaitBuckets = tracer.AcceptWaitBuckets

// WaitHistogram counts accept waits into WaitBuckets: unlike percentiles,
// counts add up across listeners and over time. It is a value: a copy is a
// snapshot.
type WaitHistogram struct {
	// Counts[i] counts the waits in (WaitBuckets[i-1], WaitBuckets[i]];
	// the last counts those above the largest bound. Not cumulative.
	Counts [len(WaitBuckets) + 1]uint64
	Count  uint64
	Sum    time.Duration
}

// Add counts one wait.
func (h *WaitHistogram) Add(d time.Duration) {
	i := 0
	for i < len(WaitBuckets) && d > WaitBuckets[i] {
		i++
	}
	h.Counts[i]++
	h.Count++
	h.Sum += d
}

// Cumulative returns the count of waits at most each bound, as the
// Prometheus text format wants them.
func (h *WaitHistogram) Cumulative() [len(WaitBuckets)]uint64 {
	var c [len(WaitBuckets)]uint64
	var run uint64
	for i := range WaitBuckets {
		run += h.Counts[i]
		c[i] = run
	}
	return c
}

// Merge is h and o together (the sockets of a SO_REUSEPORT group).
func (h WaitHistogram) Merge(o WaitHistogram) WaitHistogram {
	for i := range h.Counts {
		h.Counts[i] += o.Counts[i]
	}
	h.Count += o.Count
	h.Sum += o.Sum
	return h
}
