package backlog

import (
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
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

// checkWaits compares each connection's accept wait with the test's own
// measure, and the reported percentiles with the test's.
func checkWaits(t *testing.T, m *monitorRun, a *acceptor, d *dialers, clientResent map[uint16]bool, final ListenerReport) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	var ours []time.Duration
	resent := 0
	for port, at := range a.accepted {
		ev, ok := m.accepts[[2]uint16{a.port, port}]
		if !ok || !ev.InStateKnown {
			t.Errorf("client port %d: no accept wait reported (event %v)", port, ok)
			continue
		}
		measured := at.Sub(d.connected[port])
		if a.resent[port] || clientResent[port] {
			// The client's final ACK was dropped: connect() returned at
			// the first SYN-ACK, the child entered the queue later, at a
			// SYN-ACK retransmit or (SYN cookies) a retransmit of the
			// client's byte. Only the queue wait is socklife's to report.
			resent++
			if ev.InState > measured+waitSlack {
				t.Errorf("client port %d (SYN-ACK resent): wait %v, longer than connect to accept %v", port, ev.InState, measured)
			}
			ours = append(ours, ev.InState)
			continue
		}
		if diff := ev.InState - measured; diff > waitSlack || diff < -waitSlack {
			t.Errorf("client port %d: accept wait %v, measured %v", port, ev.InState, measured)
		}
		ours = append(ours, measured)
	}
	slices.Sort(ours)
	if last := m.reports[len(m.reports)-1]; last.Lost != 0 {
		t.Errorf("%d events lost", last.Lost)
	}
	t.Logf("%d connections (%d with a SYN-ACK retransmit); measured p50 %v p99 %v; reported %+v",
		len(ours), resent, Percentile(ours, 50), Percentile(ours, 99), final.WaitTotal)
	if final.WaitTotal.Count != len(a.accepted) {
		t.Errorf("reported %d waits, want %d", final.WaitTotal.Count, len(a.accepted))
	}
	for _, p := range []struct {
		name      string
		got, want time.Duration
	}{{"p50", final.WaitTotal.P50, Percentile(ours, 50)}, {"p99", final.WaitTotal.P99, Percentile(ours, 99)}} {
		if diff := p.got - p.want; diff > waitSlack || diff < -waitSlack {
			t.Errorf("accept wait %s %v, measured %v", p.name, p.got, p.want)
		}
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
		if ns.Netns == final.Netns && ns.ListenOverflowsTotal < final.DropsTotal*95/100 {
			t.Errorf("reported netns ListenDrops %d, ListenOverflows %d: want at least 95%% of the listener's drops %d",
				ns.ListenDropsTotal, ns.ListenOverflowsTotal, final.DropsTotal)
		}
	}
}

// checkStall: the pause is flagged with our pid within --stall + one
// interval of the last accept, and cleared by the first accept after it.
// Any other stall flagged must be real: on a loaded machine (an emulated
// CPU shared with 50 real-time clients) the acceptor itself can be held
// off the CPU for longer than --stall, and socklife is right to say so;
// the test's own accept times show whether it was.
func checkStall(t *testing.T, m *monitorRun, a *acceptor, stoppedAt, resumed time.Time) {
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
	// Flagged at the first tick past --stall; a loaded machine runs the
	// ticker a little late.
	latest := testStall + testInterval + testutil.Scaled(50*time.Millisecond)
	if d := begin.Time.Sub(stoppedAt); d < testStall || d > latest {
		t.Errorf("stall flagged %v after the last accept, want within (%v, %v]", d, testStall, latest)
	}
	// The report carrying it reached us in time too, give or take a
	// dump: on a loaded machine an interval of slack.
	m.mu.Lock()
	for _, g := range m.got {
		if slices.ContainsFunc(g.r.Stalls, func(e StallEvent) bool { return e == begin }) {
			if d := g.at.Sub(stoppedAt); d > testStall+testInterval+testutil.Scaled(testInterval) {
				t.Errorf("stall reported %v after the last accept", d)
			}
		}
	}
	m.mu.Unlock()
	if end.Time.Before(resumed) || end.Time.Sub(resumed) > testInterval {
		t.Errorf("stall cleared at %v, %v after accepts resumed", end.Time, end.Time.Sub(resumed))
	}
	t.Logf("stall flagged %v after the last accept, cleared %v after accepts resumed (stalled %v)",
		begin.Time.Sub(stoppedAt), end.Time.Sub(resumed), end.For)
}

// checkPrompt: the listener that accepts at once shows nothing wrong.
func checkPrompt(t *testing.T, m *monitorRun, a *acceptor) {
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
	if final.WaitTotal.Max >= waitSlack {
		m.mu.Lock()
		for k, ev := range m.accepts {
			if k[0] == a.port {
				t.Logf("prompt accept at %s wait %v by %d", ev.Time.Format("05.000000"), ev.InState, ev.Current.PID)
			}
		}
		m.mu.Unlock()
	}
	if final.DropsTotal != 0 || final.WaitTotal.Count != promptConns || final.WaitTotal.Max >= waitSlack {
		t.Errorf("prompt listener: drops %d, %d waits (want %d), max wait %v (want < %v)",
			final.DropsTotal, final.WaitTotal.Count, promptConns, final.WaitTotal.Max, waitSlack)
	}
}

// Percentile, the test's oracle, is the nearest-rank p-th percentile of sorted: the smallest
// sample with at least p% of the samples at or below it.
func Percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[rank(len(sorted), p)]
}
