package backlog

import (
	"net/netip"
	"time"
)

// maxWaitSamples bounds the accept waits kept per listener for the
// since-start percentiles. Past it every other sample of the sorted set is
// dropped: the percentiles come from a uniform subsample, within one
// sample's rank of the exact ones.
const maxWaitSamples = 1 << 16

// listener is the running account of one listening socket.
type listener struct {
	key      Key
	local    netip.AddrPort
	pid      uint32
	comm     string
	acceptor bool // pid is who accepted, not only who listened

	backlog uint32
	// The queue length is a step function: qlen since qlenAt.
	qlen     uint32
	qlenAt   time.Time
	bpfQueue bool // events describe the queue: dumps do not override it
	peak     uint32
	fullTime time.Duration // in this interval
	synq     uint32
	synPeak  uint32

	enqueues, accepts uint64
	waits             []time.Duration // this interval
	allWaits          []time.Duration // sorted; merged at each report
	allCount          int             // accept waits since start, before thinning
	thin              uint            // allWaits keeps one wait in 1<<thin
	merged            []time.Duration // scratch for the merge

	dropsBase, drops    uint32 // sk_drops when first seen, and last read
	dropsAtStart        uint32 // at the start of the interval
	synacks, synacksTot uint64

	lastAccept    time.Time // zero: none seen
	nonEmptySince time.Time // zero: empty
	stalled       bool
	stallSince    time.Time
	seen          time.Time // last dump or event that showed it alive
}

// sample records the queue length at t (an enqueue, an accept or a dump).
func (l *listener) sample(t time.Time, qlen, backlog uint32) {
	if backlog != 0 {
		l.backlog = backlog
	}
	l.advance(t)
	l.qlen = qlen
	l.peak = max(l.peak, qlen)
	if qlen == 0 {
		l.nonEmptySince = time.Time{}
	} else if l.nonEmptySince.IsZero() {
		l.nonEmptySince = t
	}
}

// advance accounts the time from qlenAt to t at the current length.
// Events may arrive a little out of time order: those add nothing.
func (l *listener) advance(t time.Time) {
	if l.qlenAt.IsZero() {
		l.qlenAt = t
		return
	}
	if d := t.Sub(l.qlenAt); d > 0 {
		if l.backlog != 0 && l.qlen > l.backlog {
			l.fullTime += d
		}
		l.qlenAt = t
	}
}

// setDrops takes a reading of sk_drops; the counter only grows, and a
// reading older than the last (an event that waited in the ring) is ignored.
func (l *listener) setDrops(d uint32) {
	if int32(d-l.drops) > 0 {
		l.drops = d
	}
}

func (l *listener) accepted(t time.Time, wait time.Duration, known bool) {
	l.accepts++
	l.lastAccept = t
	if known {
		l.waits = append(l.waits, wait)
	}
}

// checkStall flags or clears a stall at now, returning the event if the
// flag changed.
func (l *listener) checkStall(now time.Time, threshold time.Duration) (StallEvent, bool) {
	since := l.nonEmptySince
	if l.lastAccept.After(since) {
		since = l.lastAccept
	}
	stalled := l.qlen > 0 && !since.IsZero() && now.Sub(since) > threshold
	if stalled == l.stalled {
		return StallEvent{}, false
	}
	if !stalled {
		return l.endStall(now), true
	}
	l.stalled, l.stallSince = true, since
	return StallEvent{Time: now, Key: l.key, Local: l.local, PID: l.pid, Comm: l.comm, Begin: true, For: now.Sub(since)}, true
}

// endStall clears the stall flag at t: an accept, or an empty queue.
func (l *listener) endStall(t time.Time) StallEvent {
	l.stalled = false
	return StallEvent{Time: t, Key: l.key, Local: l.local, PID: l.pid, Comm: l.comm, For: t.Sub(l.stallSince)}
}

// report closes the interval [start, now) and resets the interval counters.
func (l *listener) report(start, now time.Time) ListenerReport {
	l.advance(now)
	r := ListenerReport{
		Key: l.key, Local: l.local, PID: l.pid, Comm: l.comm,
		Backlog: l.backlog, Queue: l.qlen, Peak: l.peak,
		SynQueue: l.synq, SynPeak: l.synPeak,
		Enqueues: l.enqueues, Accepts: l.accepts,
		Wait:          summarize(l.waits),
		Drops:         uint64(l.drops - l.dropsAtStart),
		DropsTotal:    uint64(l.drops - l.dropsBase),
		SynackRetrans: l.synacks, SynackRetransTotal: l.synacksTot,
		Stalled: l.stalled,
	}
	l.mergeWaits() // after summarize: l.waits is sorted
	r.WaitTotal = summarizeSorted(l.allWaits)
	r.WaitTotal.Count = l.allCount
	if l.stalled {
		r.StalledFor = now.Sub(l.stallSince)
	}
	if span := now.Sub(start); span > 0 {
		r.FullFraction = min(1, float64(l.fullTime)/float64(span))
	}
	l.fullTime = 0
	l.peak = l.qlen
	l.synPeak = l.synq
	l.enqueues, l.accepts, l.synacks = 0, 0, 0
	l.waits = l.waits[:0]
	l.dropsAtStart = l.drops
	return r
}

// mergeWaits adds the interval's sorted waits to the sorted total: linear,
// where sorting the total at every report would cost n log n under the lock
// the event reader waits on.
func (l *listener) mergeWaits() {
	if len(l.waits) == 0 {
		return
	}
	// new waits join at the rate the kept ones were thinned to
	b := l.waits
	if stride := 1 << l.thin; stride > 1 {
		kept := b[:0:0]
		for i, w := range b {
			if (l.allCount+i)%stride == stride-1 {
				kept = append(kept, w)
			}
		}
		b = kept
	}
	l.allCount += len(l.waits)
	m := l.merged[:0]
	a := l.allWaits
	for len(a) > 0 && len(b) > 0 {
		if a[0] <= b[0] {
			m, a = append(m, a[0]), a[1:]
		} else {
			m, b = append(m, b[0]), b[1:]
		}
	}
	m = append(append(m, a...), b...)
	for len(m) > maxWaitSamples {
		thin := m[:0]
		for i := 1; i < len(m); i += 2 {
			thin = append(thin, m[i])
		}
		m = thin
		l.thin++
	}
	l.merged, l.allWaits = l.allWaits, m
}
