package backlog

import (
	"context"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// checkQueue: the queue reaches backlog+1 and stays full for most of the
// slow phase and the stop (the clients retry at once, refilling it).
func checkQueue(t *testing.T, reps []atEnd, burst time.Time) {
	t.Helper()
	var peak uint32
	var full []float64
	for _, r := range reps {
		peak = max(peak, r.Peak)
		if r.start.After(burst.Add(testInterval)) && r.end.Before(burst.Add(4*time.Second)) {
			full = append(full, r.FullFraction)
		}
		if r.Backlog != slowBacklog {
			t.Errorf("backlog %d, want %d", r.Backlog, slowBacklog)
		}
	}
	// The queue holds backlog+1; it can go past that by a child or so
	// when CPUs race between sk_acceptq_is_full() and the enqueue, which
	// the kernel does not serialise.
	if peak < slowBacklog+1 || peak > slowBacklog+uint32(runtime.NumCPU()) {
		t.Errorf("queue peak %d, want backlog+1 = %d (up to %d when CPUs race)", peak, slowBacklog+1, slowBacklog+runtime.NumCPU())
	}
	var sum float64
	for _, f := range full {
		sum += f
	}
	if len(full) == 0 || sum/float64(len(full)) < 0.5 {
		t.Errorf("queue full %.2f of the burst on average over %d intervals, want most of it: %v", sum/float64(max(len(full), 1)), len(full), full)
	}
	t.Logf("queue peak %d; full fraction per interval of the burst: %.2f", peak, full)
}

// clockSlack covers the conversion of the kernel's monotonic event times
// to wall-clock time (one offset, taken at start), which the test's own
// readings are compared with.
const clockSlack = time.Millisecond

// checkWaits checks each connection's accept wait, and the reported
// percentiles, against what the test measured around its own syscalls: the
// child entered the queue after the client called connect(), and left it
// before the acceptor's accept() returned, so the wait is at most accept()
// returned minus connect() called. Delays of the test's threads (a busy
// host preempting the VM's CPU) widen that bound; they never put the truth
// past it. (No such bound holds from below: with the CPU busy, the
// client's final ACK may be processed long after its connect() returned,
// by ksoftirqd, which the real-time clients hold off. checkPauseWaits
// bounds some waits from below.)
func checkWaits(t *testing.T, m *monitorRun, a *acceptor, d *dialers, clientResent map[uint16]bool, final ListenerReport) {
	t.Helper()
	var his []time.Duration
	resent := 0
	eachWait(t, m, a, d, func(port uint16, ev tracer.Event, hi time.Duration) {
		if a.resent[port] || clientResent[port] {
			resent++ // the final ACK was dropped: the child came later still
		}
		if ev.InState > hi+clockSlack {
			t.Errorf("client port %d: accept wait %v, longer than the test's connect() called to accept() returned %v", port, ev.InState, hi)
		}
		his = append(his, hi)
	})
	slices.Sort(his)
	m.mu.Lock()
	defer m.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if last := m.reports[len(m.reports)-1]; last.Lost != 0 {
		t.Errorf("%d events lost", last.Lost)
	}
	t.Logf("%d connections (%d with a SYN-ACK retransmit); measured at most p50 %v p99 %v; reported %+v",
		len(his), resent, Percentile(his, 50), Percentile(his, 99), final.WaitTotal)
	if final.WaitTotal.Count != len(a.accepted) {
		t.Errorf("reported %d waits, want %d", final.WaitTotal.Count, len(a.accepted))
	}
	// a percentile of waits each under its bound is under the same
	// percentile of the bounds
	for _, p := range []struct {
		name string
		n    int
		got  time.Duration
	}{{"p50", 50, final.WaitTotal.P50}, {"p99", 99, final.WaitTotal.P99}, {"max", 100, final.WaitTotal.Max}} {
		if hi := Percentile(his, p.n); p.got > hi+clockSlack {
			t.Errorf("accept wait %s %v, longer than the test measured at most %v", p.name, p.got, hi)
		}
	}
}

// queuedNow returns how many connections wait in the listener's accept
// queue, and a time by which each of them had entered it.
func queuedNow(t *testing.T, port uint16) heldQueue {
	t.Helper()
	res, err := snapshot.Dump(context.Background(), snapshot.Options{TCP: true, IPv4: true, States: tcpstate.Of(tcpstate.Listen)})
	if err != nil {
		t.Fatal(err)
	}
	by := time.Now()
	for _, s := range res.Sockets {
		if s.Local.Port() == port {
			return heldQueue{n: int(s.RecvQ), by: by}
		}
	}
	t.Fatalf("no listener on port %d", port)
	return heldQueue{}
}

// heldQueue is the accept queue seen when the acceptor paused: n children,
// all in the queue by then.
type heldQueue struct {
	n  int
	by time.Time
}

// checkPauseWaits bounds waits from below: the n children in the queue
// when the acceptor paused are the first n it accepts after the resume
// (the queue is first in, first out), and each waited at least from then
// to when its accept() was called.
func checkPauseWaits(t *testing.T, m *monitorRun, a *acceptor, held heldQueue, resumed time.Time) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	var after []uint16
	for port, at := range a.accepted {
		if at.After(resumed) {
			after = append(after, port)
		}
	}
	slices.SortFunc(after, func(x, y uint16) int { return a.accepted[x].Compare(a.accepted[y]) })
	if held.n == 0 || len(after) < held.n {
		t.Fatalf("%d in the queue at the pause, %d accepted after it", held.n, len(after))
	}
	for _, port := range after[:held.n] {
		lo := a.called[port].Sub(held.by)
		if ev := m.accepts[[2]uint16{a.port, port}]; ev.InState < lo-clockSlack {
			t.Errorf("client port %d, queued through the pause: accept wait %v, shorter than the %v the test saw it queued", port, ev.InState, lo)
		}
	}
}

// eachWait calls fn for every connection a accepted, with the accept
// socklife reported for it and the longest the wait can have been by the
// test's readings (see checkWaits); one without a reported wait fails.
func eachWait(t *testing.T, m *monitorRun, a *acceptor, d *dialers, fn func(port uint16, ev tracer.Event, hi time.Duration)) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	for port, at := range a.accepted {
		ev, ok := m.accepts[[2]uint16{a.port, port}]
		if !ok || !ev.InStateKnown {
			t.Errorf("listener %d, client port %d: no accept wait reported (event %v)", a.port, port, ok)
			continue
		}
		fn(port, ev, at.Sub(d.started[port]))
	}
}

// checkDrops: socklife's drops equal ss's sk_drops delta. The netns
// counters grow by about as much but need not match: every listen drop
// (tcp_listendrop) counts once in sk_drops and TcpExtListenDrops, but a
// final ACK dropped on overflow is counted in sk_drops a second time by
// tcp_v4_rcv's discard path, while an overflow is also a ListenDrop.
func checkDrops(t *testing.T, m *monitorRun, final ListenerReport, ssDelta uint64, before, after Netstat) {
	t.Helper()
	overflows := after.ListenOverflows - before.ListenOverflows
	drops := after.ListenDrops - before.ListenDrops
	t.Logf("drops %d (ss: %d), netns ListenOverflows +%d ListenDrops +%d, SYN-ACK retransmits %d",
		final.DropsTotal, ssDelta, overflows, drops, final.SynackRetransTotal)
	if final.DropsTotal == 0 || final.DropsTotal != ssDelta {
		t.Errorf("drops %d, want ss's sk_drops delta %d (> 0)", final.DropsTotal, ssDelta)
	}
	// At least 95%: the double-counted segments (final ACKs, and the
	// clients' bytes that carry one) are a few in a hundred here.
	if atLeast := final.DropsTotal * 95 / 100; overflows < atLeast || drops < overflows {
		t.Errorf("netns ListenOverflows grew %d, ListenDrops %d: want at least 95%% of the listener's drops %d", overflows, drops, final.DropsTotal)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	last := m.reports[len(m.reports)-1]
	for _, ns := range last.Netns {
		if ns.Netns == final.Netns && ns.Total.ListenOverflows < final.DropsTotal*95/100 {
			t.Errorf("reported netns ListenDrops %d, ListenOverflows %d: want at least 95%% of the listener's drops %d",
				ns.Total.ListenDrops, ns.Total.ListenOverflows, final.DropsTotal)
		}
	}
}

// checkStall: the pause is flagged with our pid within --stall + one
// interval of the last accept, and cleared by the first accept after it.
// Any other stall flagged must be real: on a loaded machine (an emulated
// CPU shared with 50 real-time clients) the acceptor itself can be held
// off the CPU for longer than --stall, and socklife is right to say so;
// the test's own accept times show whether it was.
func checkStall(t *testing.T, m *monitorRun, a *acceptor, lastCall, stoppedAt, resumed time.Time) {
	t.Helper()
	evs := m.stalls(a.port)
	var pause []StallEvent
	for i := 0; i < len(evs); i += 2 {
		if i+1 == len(evs) || !evs[i].Begin || evs[i+1].Begin {
			t.Fatalf("stall events %+v, want begins and ends in turn", evs)
		}
		begin, end := evs[i], evs[i+1]
		if begin.Time.After(stoppedAt) && begin.Time.Before(resumed) {
			pause = append(pause, begin, end)
			continue
		}
		// The accept that started it may be timed by the test up to an
		// interval late; after that there must be none.
		since := end.Time.Add(-end.For)
		if at, ok := a.acceptedBetween(since.Add(testInterval), end.Time); ok {
			t.Errorf("stall from %v to %v flagged outside the pause, but the test accepted at %v", since, end.Time, at)
		} else {
			t.Logf("also flagged outside the pause: a real stall of %v (no accept from %v to %v)", end.For, since, end.Time)
		}
	}
	if len(pause) != 2 {
		t.Fatalf("stall events %+v, want one begin and one end around the pause", evs)
	}
	begin, end := pause[0], pause[1]
	if begin.PID != uint32(os.Getpid()) {
		t.Errorf("stall flagged with pid %d, want %d", begin.PID, os.Getpid())
	}
	// Flagged at the first tick past --stall, whenever the ticker ran:
	// never before --stall after the last dequeue (which came after the
	// test called the last accept()), and in the first report that ended
	// more than --stall after the test's last accept() returned (the
	// dequeue came before, so by then it had to).
	if d := begin.Time.Sub(lastCall); d < testStall-clockSlack {
		t.Errorf("stall flagged %v after the last accept() was called, before --stall %v", d, testStall)
	}
	m.mu.Lock()
	carried := -1
	firstDue := -1
	for i, g := range m.got {
		if carried < 0 && slices.ContainsFunc(g.r.Stalls, func(e StallEvent) bool { return e.Begin && e.Key == begin.Key && e.Time.Equal(begin.Time) }) {
			carried = i
			if !g.r.End.Equal(begin.Time) {
				t.Errorf("stall found at %v reported in the interval ending %v: the report of the tick that found it must carry it", begin.Time, g.r.End)
			}
		}
		if firstDue < 0 && g.r.End.Sub(stoppedAt) > testStall {
			firstDue = i
		}
	}
	m.mu.Unlock()
	if carried < 0 || carried > firstDue {
		t.Errorf("stall reported in report %d; report %d already ended more than --stall after the last accept", carried, firstDue)
	}
	// Cleared by the first accept after the pause: socklife's time for it
	// lies between the resume and the test's own reading after accept()
	// returned (give or take the ktime-to-wall conversion).
	first, ok := a.firstAcceptAfter(resumed)
	if !ok {
		t.Fatalf("no accept after the resume")
	}
	if end.Time.Before(resumed) || end.Time.After(first.Add(time.Millisecond)) {
		t.Errorf("stall cleared at %v; accepts resumed at %v, the first accept returned at %v", end.Time, resumed, first)
	}
	t.Logf("stall flagged %v after the last accept, cleared %v after accepts resumed (stalled %v)",
		begin.Time.Sub(stoppedAt), end.Time.Sub(resumed), end.For)
}

// checkPrompt: the listener that accepts at once shows nothing wrong: no
// stall, no drops, and each connection's wait inside what the test
// measured (see checkWaits). How short those waits are is the machine's
// business: under load a real-time acceptor still waits for a CPU, and
// socklife is right to say so.
func checkPrompt(t *testing.T, m *monitorRun, a *acceptor, d *dialers) {
	t.Helper()
	reps := m.listenerReports(a.port)
	if len(reps) == 0 {
		t.Fatal("prompt listener never reported")
	}
	final := reps[len(reps)-1]
	for _, r := range reps {
		if r.Stalled || r.Drops != 0 {
			t.Errorf("prompt listener: stalled %v, drops %d", r.Stalled, r.Drops)
		}
	}
	if evs := m.stalls(a.port); len(evs) != 0 {
		t.Errorf("prompt listener stall events: %+v", evs)
	}
	if final.DropsTotal != 0 || final.WaitTotal.Count != promptConns {
		t.Errorf("prompt listener: drops %d, %d waits (want %d)", final.DropsTotal, final.WaitTotal.Count, promptConns)
	}
	var hi time.Duration // the longest any wait can have been
	eachWait(t, m, a, d, func(port uint16, ev tracer.Event, h time.Duration) {
		hi = max(hi, h)
		if ev.InState > h+clockSlack {
			t.Errorf("prompt client port %d: accept wait %v, longer than the test's connect() called to accept() returned %v", port, ev.InState, h)
		}
	})
	if w := final.WaitTotal.Max; w > hi+clockSlack {
		t.Errorf("prompt listener: longest wait %v, longer than the test measured at most %v", w, hi)
	}
	t.Logf("prompt listener: longest wait %v, at most %v by the test's readings", final.WaitTotal.Max, hi)
}

// Percentile, the test's oracle, is the nearest-rank p-th percentile of sorted: the smallest
// sample with at least p% of the samples at or below it.
func Percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[rank(len(sorted), p)]
}
