package backlog

import (
	"slices"
	"time"
)

// summarize sorts waits in place and reads nearest-rank percentiles.
func summarize(waits []time.Duration) Waits {
	if len(waits) == 0 {
		return Waits{}
	}
	slices.Sort(waits)
	return summarizeSorted(waits)
}

func summarizeSorted(waits []time.Duration) Waits {
	if len(waits) == 0 {
		return Waits{}
	}
	return Waits{
		Count: len(waits),
		P50:   Percentile(waits, 50),
		P90:   Percentile(waits, 90),
		P99:   Percentile(waits, 99),
		Max:   waits[len(waits)-1],
	}
}

// Percentile is the nearest-rank p-th percentile of sorted: the smallest
// sample with at least p% of the samples at or below it.
func Percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}
