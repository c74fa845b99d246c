package backlog

import (
	"math/rand/v2"
	"slices"
	"time"
)

// maxWaitSamples bounds the accept waits a waitSample keeps. Up to it the
// percentiles are exact; past it they come from a uniform random sample of
// this size, whose nearest-rank p99 is within ±0.5% of rank of the exact one
// (two standard deviations at 4096). Kept exact past it: the count and the
// maximum.
const maxWaitSamples = 4096

// waitSample is a uniform random sample of accept waits (reservoir
// sampling, Knuth's Algorithm R): O(1) per wait and at most one sort of
// maxWaitSamples per report, where keeping every wait cost a sort of the
// interval's and a merge into the since-start set at each report, a sixth
// of the backlog tracer's CPU under a connection churn (BenchmarkChurnCost).
type waitSample struct {
	kept  []time.Duration // in no order: reordered by summary, replaced at random
	count int
	max   time.Duration
}

func (w *waitSample) add(d time.Duration, rng *rand.PCG) {
	w.count++
	w.max = max(w.max, d)
	if len(w.kept) < maxWaitSamples {
		w.kept = append(w.kept, d)
		return
	}
	// the count-th wait stays with probability maxWaitSamples/count, in
	// place of a random one
	if j := rng.Uint64() % uint64(w.count); j < maxWaitSamples {
		w.kept[j] = d
	}
}

// summary reads nearest-rank percentiles of the sample, reordering it: a
// selection for each, in linear time, where sorting it was most of what a
// report cost.
func (w *waitSample) summary() Waits {
	if w.count == 0 {
		return Waits{}
	}
	s := w.kept
	r50, r90, r99 := rank(len(s), 50), rank(len(s), 90), rank(len(s), 99)
	selectNth(s, r50)
	selectNth(s[r50:], r90-r50)
	selectNth(s[r90:], r99-r90)
	return Waits{Count: w.count, P50: s[r50], P90: s[r90], P99: s[r99], Max: w.max}
}

// rank is the index of the nearest-rank p-th percentile of n sorted values.
func rank(n, p int) int {
	return max((p*n+99)/100, 1) - 1 // ceil(p/100 * n), from 1
}

// selectNth reorders s so that s[k] holds what sorting would put there,
// nothing after it smaller, nothing before it larger (Hoare's quickselect,
// median-of-three pivots; a range that keeps splitting badly is sorted).
func selectNth(s []time.Duration, k int) {
	lo, hi := 0, len(s)-1
	for rounds := 0; hi > lo; rounds++ {
		if rounds > 48 {
			slices.Sort(s[lo : hi+1])
			return
		}
		mid := lo + (hi-lo)/2
		// median of three at mid, the smallest at lo, the largest at hi
		if s[mid] < s[lo] {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if s[hi] < s[lo] {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[hi] < s[mid] {
			s[hi], s[mid] = s[mid], s[hi]
		}
		pivot := s[mid]
		i, j := lo, hi
		for i <= j {
			for s[i] < pivot {
				i++
			}
			for s[j] > pivot {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		// s[lo..j] <= pivot <= s[i..hi], and s[j+1..i-1] == pivot
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return
		}
	}
}

func (w *waitSample) reset() {
	w.kept, w.count, w.max = w.kept[:0], 0, 0
}
