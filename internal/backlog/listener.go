package backlog

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/socklife/socklife/tracer"
)

// listener is the running account of one listening socket.
type listener struct {
	key   Key
	local netip.AddrPort
	// pid and comm stand for the listener when no /proc scan has named
	// its holders: who accepted last, else who the BPF side lent children
	pid      uint32
	comm     string
	acceptor bool // pid is who accepted, not only who listened
	// sockCgroup is the cgroup the listener was created in (its
	// children's events and dumps say); ownerCgroup that of pid
	sockCgroup, ownerCgroup uint64

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
	waits, allWaits   waitSample // this interval, since start
	waitHist          WaitHistogram
	acceptsTot        uint64
	kernelAccepts     uint64        // the kernel's count at the last reading (fromKernel)
	stallTot          time.Duration // stalls that ended
	rng               *rand.PCG     // for the samples; seeded per listener, so runs repeat

	dropsBase, drops    uint32 // sk_drops when first seen, and last read
	dropsAtStart        uint32 // at the start of the interval
	synacks, synacksTot uint64

	lastAccept    time.Time // zero: none seen
	nonEmptySince time.Time // zero: empty
	// nonEmptyAtLeast: the queue was non-empty when first sampled, so it
	// has been so since before nonEmptySince
	nonEmptyAtLeast bool
	sampled         bool
	stalled         bool
	stallSince      time.Time
	stallAtLeast    bool
	seen            time.Time // last dump or event that showed it alive
}

// sample records the queue length at t (an enqueue, an accept or a dump).
func (l *listener) sample(t time.Time, qlen, backlog uint32) {
	if backlog != 0 {
		l.backlog = backlog
	}
	l.advance(t)
	l.qlen = qlen
	l.peak = max(l.peak, qlen)
	switch {
	case qlen == 0:
		l.nonEmptySince, l.nonEmptyAtLeast = time.Time{}, false
	case l.nonEmptySince.IsZero():
		l.nonEmptySince, l.nonEmptyAtLeast = t, !l.sampled
	}
	l.sampled = true
}

// enqueued counts a child entering the queue at t when the event could not
// read the queue (a listener user space seeded, before the BPF side knows
// its sock): one more than the last sample. Dumps correct the estimate.
func (l *listener) enqueued(t time.Time) {
	l.enqueues++
	if !l.bpfQueue {
		l.sample(t, l.qlen+1, 0)
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
		if QueueFull(l.qlen, l.backlog) {
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
	l.acceptsTot++
	l.lastAccept = t
	if known {
		l.waitHist.Add(wait)
		if l.rng == nil {
			l.rng = rand.NewPCG(l.key.Inode, uint64(l.key.Netns))
		}
		l.waits.add(wait, l.rng)
		l.allWaits.add(wait, l.rng)
	}
}

// fromKernel takes the kernel's running count of this listener's accepts
// (tracer.ListenerAccepts, since the tracer started), which stands for
// accept events under serve: the interval's accepts are what it grew by,
// the totals and the histogram are the kernel's. comm names its acceptor
// ("" if unknown).
func (l *listener) fromKernel(c tracer.ListenerAccepts, comm string) {
	if c.Accepts > l.kernelAccepts {
		l.accepts += c.Accepts - l.kernelAccepts
	}
	l.kernelAccepts = c.Accepts
	l.acceptsTot = c.Accepts
	h := WaitHistogram{Counts: c.Waits, Sum: c.WaitSum}
	for _, n := range c.Waits {
		h.Count += n
	}
	l.waitHist = h
	if c.Last.After(l.lastAccept) {
		l.lastAccept = c.Last
	}
	if c.Acceptor != 0 {
		l.pid, l.comm, l.acceptor = c.Acceptor, comm, true
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
	// no accept seen since the queue, found non-empty, began to fill
	l.stallAtLeast = l.nonEmptyAtLeast && !l.lastAccept.After(l.nonEmptySince)
	return StallEvent{Time: now, Key: l.key, Local: l.local, Begin: true, For: now.Sub(since), AtLeast: l.stallAtLeast}, true
}

// endStall clears the stall flag at t: an accept, or an empty queue.
func (l *listener) endStall(t time.Time) StallEvent {
	l.stalled = false
	l.stallTot += t.Sub(l.stallSince)
	return StallEvent{Time: t, Key: l.key, Local: l.local, For: t.Sub(l.stallSince), AtLeast: l.stallAtLeast}
}

// learnCgroup takes the listener's cgroup from a child's event: a child is
// created in its listener's.
func (l *listener) learnCgroup(ev *tracer.Event) {
	if ev.SockCgroupID != 0 {
		l.sockCgroup = ev.SockCgroupID
	}
}

// report closes the interval [start, now) and resets the interval counters.
func (l *listener) report(start, now time.Time) ListenerReport {
	l.advance(now)
	r := ListenerReport{
		Key: l.key, Local: l.local, PID: l.pid, Comm: l.comm,
		Backlog: l.backlog, Queue: l.qlen, Peak: l.peak,
		SynQueue: l.synq, SynPeak: l.synPeak, SynQueueFull: QueueFull(l.synPeak, l.backlog),
		Enqueues: l.enqueues, Accepts: l.accepts,
		Wait:          l.waits.summary(),
		WaitTotal:     l.allWaits.summary(),
		Drops:         uint64(l.drops - l.dropsAtStart),
		DropsTotal:    uint64(l.drops - l.dropsBase),
		SkDrops:       l.drops,
		SynackRetrans: l.synacks, SynackRetransTotal: l.synacksTot,
		Stalled:      l.stalled,
		AcceptsTotal: l.acceptsTot, WaitHistogram: l.waitHist, StalledTotal: l.stallTot,
	}
	if l.stalled {
		r.StalledFor, r.StalledAtLeast = now.Sub(l.stallSince), l.stallAtLeast
		r.StalledTotal += r.StalledFor
	}
	if l.pid != 0 {
		r.Holders = []tracer.Holder{{PID: l.pid, Comm: l.comm, Accepts: l.acceptor}}
		r.Acceptors = int(boolInt(l.acceptor))
	}
	if span := now.Sub(start); span > 0 {
		r.FullFraction = min(1, float64(l.fullTime)/float64(span))
	}
	l.fullTime = 0
	l.peak = l.qlen
	l.synPeak = 0 // the SYN queue is seen only at events: none yet in the next
	l.enqueues, l.accepts, l.synacks = 0, 0, 0
	l.waits.reset()
	l.dropsAtStart = l.drops
	return r
}

func boolInt(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
