package backlog

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/filter"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

var (
	t0    = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	lnKey = Key{Netns: 7, Inode: 1001}
	lnAt  = netip.MustParseAddrPort("127.0.0.1:8080")
)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// enqueue, accept and synack build the events the tracer delivers.
func enqueue(ms int, qlen uint32, drops uint32) *tracer.Event {
	return &tracer.Event{Kind: tracer.StateChange, Time: at(ms), Netns: lnKey.Netns, Local: lnAt,
		Old: tcpstate.SynRecv, New: tcpstate.Established,
		Owner: tracer.Task{PID: 10, Comm: "listener"}, OwnerSource: tracer.OwnerListener,
		Queue: tracer.QueueInfo{Known: true, Inode: lnKey.Inode, Len: qlen, Backlog: 4, Drops: drops}}
}

func accept(ms int, qlen uint32, wait time.Duration) *tracer.Event {
	return &tracer.Event{Kind: tracer.Accept, Time: at(ms), Netns: lnKey.Netns, Local: lnAt,
		Current: tracer.Task{PID: 42, Comm: "server"}, InState: wait, InStateKnown: true,
		Queue: tracer.QueueInfo{Known: true, Inode: lnKey.Inode, Len: qlen, Backlog: 4}}
}

func synack(ms int) *tracer.Event {
	return &tracer.Event{Kind: tracer.SynackRetransmit, Time: at(ms), Netns: lnKey.Netns, Local: lnAt,
		Queue: tracer.QueueInfo{Known: true, Inode: lnKey.Inode, Backlog: 4}}
}

func dumped(qlen, drops uint32) []snapshot.Socket {
	return []snapshot.Socket{{Protocol: snapshot.TCP, State: tcpstate.Listen, Netns: lnKey.Netns, Inode: lnKey.Inode,
		Local: lnAt, RecvQ: qlen, SendQ: 4, MemInfo: &snapshot.MemInfo{Drops: drops}}}
}

func TestAccountingQueue(t *testing.T) {
	a := NewAccounting(Config{Interval: time.Second, Stall: 300 * time.Millisecond}, at(0))
	// queue 5 (full, backlog 4) from 100 to 600 ms, then drained
	for i, ms := range []int{20, 40, 60, 80, 100} {
		a.Observe(enqueue(ms, uint32(i+1), 0))
	}
	a.Observe(accept(600, 4, 580*time.Millisecond))
	a.Observe(accept(700, 3, 660*time.Millisecond))
	r := a.Tick(at(1000))
	if len(r.Listeners) != 1 {
		t.Fatalf("%d listeners, want 1", len(r.Listeners))
	}
	l := r.Listeners[0]
	if l.Peak != 5 || l.Queue != 3 || l.Backlog != 4 || l.Enqueues != 5 || l.Accepts != 2 {
		t.Errorf("peak %d queue %d backlog %d enqueues %d accepts %d, want 5 3 4 5 2", l.Peak, l.Queue, l.Backlog, l.Enqueues, l.Accepts)
	}
	if l.FullFraction != 0.5 {
		t.Errorf("full fraction %v, want 0.5 (100..600 ms of 1 s)", l.FullFraction)
	}
	if l.PID != 42 || l.Comm != "server" {
		t.Errorf("owner %d %s, want the acceptor 42 server", l.PID, l.Comm)
	}
	if l.Wait.Count != 2 || l.Wait.P50 != 580*time.Millisecond || l.Wait.Max != 660*time.Millisecond {
		t.Errorf("waits %+v", l.Wait)
	}
	// Next interval: the peak restarts from the current length.
	r = a.Tick(at(2000))
	if l := r.Listeners[0]; l.Peak != 3 || l.Accepts != 0 || l.Wait.Count != 0 || l.WaitTotal.Count != 2 {
		t.Errorf("second interval: peak %d accepts %d waits %d total %d, want 3 0 0 2", l.Peak, l.Accepts, l.Wait.Count, l.WaitTotal.Count)
	}
}

func TestAccountingStall(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []*tracer.Event
		ticks  []int  // ms
		want   string // stall events over all ticks: "+ms" begin, "-ms" end
	}{
		{"accepting in time", []*tracer.Event{enqueue(0, 1, 0), accept(200, 0, 0), enqueue(300, 1, 0), accept(500, 0, 0)}, []int{250, 500, 750}, ""},
		{"empty queue is no stall", []*tracer.Event{enqueue(0, 1, 0), accept(10, 0, 0)}, []int{500, 1000}, ""},
		{"stall then accept", []*tracer.Event{enqueue(0, 1, 0), enqueue(100, 2, 0), accept(900, 1, 0)}, []int{250, 500, 750, 1000}, "+500 -900"},
		{"stall counts from the last accept", []*tracer.Event{accept(0, 0, 0), enqueue(250, 1, 0)}, []int{250, 500, 750}, "+750"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAccounting(Config{Interval: 250 * time.Millisecond, Stall: 300 * time.Millisecond}, at(0))
			var got []string
			ev := 0
			for _, tick := range tc.ticks {
				for ev < len(tc.events) && tc.events[ev].Time.Before(at(tick)) {
					a.Observe(tc.events[ev])
					ev++
				}
				for _, s := range a.Tick(at(tick)).Stalls {
					sign := "-"
					if s.Begin {
						sign = "+"
						if s.PID == 0 {
							t.Errorf("stall without a pid")
						}
					}
					got = append(got, sign+s.Time.Sub(t0).String())
				}
			}
			want := ""
			for _, w := range strings.Fields(tc.want) {
				ms, _ := time.ParseDuration(w[1:] + "ms")
				want += " " + w[:1] + ms.String()
			}
			if strings.Join(got, " ") != strings.TrimSpace(want) {
				t.Errorf("stall events %q, want %q", got, strings.TrimSpace(want))
			}
		})
	}
}

func TestAccountingDrops(t *testing.T) {
	for _, tc := range []struct {
		name      string
		born      bool // seen entering LISTEN after start
		first     uint32
		later     []uint32 // further readings, dumps and events alike
		wantTotal uint64
	}{
		{"predates start: counts from the first reading", false, 100, []uint32{103, 110}, 10},
		{"born after start: counts from 0", true, 5, []uint32{9}, 9},
		{"a stale reading does not go back", false, 0, []uint32{8, 6}, 8},
		{"the counter wraps", false, 1<<32 - 2, []uint32{3}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAccounting(Config{}, at(0))
			if tc.born {
				a.Observe(&tracer.Event{Kind: tracer.StateChange, Time: at(0), Netns: lnKey.Netns, Local: lnAt,
					Old: tcpstate.Close, New: tcpstate.Listen})
			}
			a.ObserveDump(at(1), dumped(0, tc.first))
			for i, d := range tc.later {
				if i%2 == 0 {
					a.ObserveDump(at(10+i), dumped(0, d))
				} else {
					a.Observe(enqueue(10+i, 1, d))
				}
			}
			r := a.Tick(at(1000))
			if got := r.Listeners[0].DropsTotal; got != tc.wantTotal {
				t.Errorf("drops %d, want %d", got, tc.wantTotal)
			}
		})
	}
}

// Listeners no event touched take their queue from dumps; with events the
// dump does not override the step function.
func TestAccountingDumpOnly(t *testing.T) {
	a := NewAccounting(Config{Interval: time.Second}, at(0))
	a.ObserveDump(at(0), dumped(5, 0))
	a.Observe(synack(100))
	a.ObserveDump(at(500), dumped(2, 0))
	r := a.Tick(at(1000))
	l := r.Listeners[0]
	if l.Peak != 5 || l.Queue != 2 || l.FullFraction != 0.5 || l.SynackRetrans != 1 {
		t.Errorf("peak %d queue %d full %v synack %d, want 5 2 0.5 1", l.Peak, l.Queue, l.FullFraction, l.SynackRetrans)
	}
}

func TestAccountingFilterAndOrder(t *testing.T) {
	a := NewAccounting(Config{Keep: (&filter.Filter{Ports: filter.Ports{{Lo: 8080, Hi: 8080}}}).Match}, at(0))
	other := dumped(0, 0)
	other[0].Inode, other[0].Local = 1002, netip.MustParseAddrPort("127.0.0.1:9090")
	a.ObserveDump(at(0), append(dumped(0, 0), other...))
	r := a.Tick(at(1000))
	if len(r.Listeners) != 1 || r.Listeners[0].Local != lnAt {
		t.Errorf("with --port 8080 got %+v", r.Listeners)
	}
	reps := []ListenerReport{{Key: Key{Inode: 1}}, {Key: Key{Inode: 2}, Drops: 3}, {Key: Key{Inode: 3}, Stalled: true}, {Key: Key{Inode: 4}, FullFraction: 0.2}}
	var order []uint64
	for _, r := range sortedWorstFirst(reps) {
		order = append(order, r.Inode)
	}
	if want := []uint64{3, 2, 4, 1}; !equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	} {
		if got := Percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("p%d of %v = %v, want %v", tc.p, tc.sorted, got, tc.want)
		}
	}
}

func TestParseNetstat(t *testing.T) {
	const sample = `TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed ListenOverflows ListenDrops TCPHPHits TCPReqQFullDoCookies TCPReqQFullDrop
TcpExt: 3 1 2 1471 1473 99 4 5
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
`
	n, err := parseNetstat(strings.NewReader(sample))
	want := Netstat{ListenOverflows: 1471, ListenDrops: 1473, SyncookiesSent: 3, SyncookiesRecv: 1, SyncookiesFailed: 2,
		ReqQFullDoCookies: 4, ReqQFullDrop: 5}
	if err != nil || n != want {
		t.Errorf("got %+v, %v; want %+v", n, err, want)
	}
	for _, bad := range []string{"", "TcpExt: ListenOverflows\nTcpExt: 1 2\n", "TcpExt: ListenDrops\nTcpExt: x\n"} {
		if _, err := parseNetstat(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// Accept-wait percentiles are exact up to maxWaitSamples waits, and past it
// close to exact with the count and maximum still exact; the interval's
// sample starts afresh at each report.
func TestWaitSample(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tc := range []struct {
		n       int
		sampled bool
	}{{maxWaitSamples, false}, {10 * maxWaitSamples, true}} {
		t.Run(strconv.Itoa(tc.n), func(t *testing.T) {
			l := &listener{}
			// intervals of 1000 waits: 0..n-1 ms, each interval shuffled
			var last ListenerReport
			for start := 0; start < tc.n; start += 1000 {
				size := min(1000, tc.n-start)
				for i := range size {
					l.accepted(t0, ms(start+i*7919%size), true)
				}
				last = l.report(t0, t0.Add(time.Second))
				if last.Wait.Count != size || last.Wait.Max != ms(start+size-1) {
					t.Fatalf("interval at %d: %d waits, max %v; want %d, %v", start, last.Wait.Count, last.Wait.Max, size, ms(start+size-1))
				}
			}
			r := last.WaitTotal
			if r.Count != tc.n || r.Max != ms(tc.n-1) {
				t.Errorf("since start: %d waits, max %v; want %d, %v", r.Count, r.Max, tc.n, ms(tc.n-1))
			}
			if len(l.allWaits.kept) > maxWaitSamples {
				t.Errorf("%d waits kept, at most %d wanted", len(l.allWaits.kept), maxWaitSamples)
			}
			for _, p := range []struct {
				pct int
				got time.Duration
			}{{50, r.P50}, {90, r.P90}, {99, r.P99}} {
				exact := (p.pct*tc.n+99)/100 - 1 // nearest rank of 0..n-1
				tolerance := 0.0
				if tc.sampled {
					// three standard deviations of a sample quantile's rank
					q := float64(p.pct) / 100
					tolerance = 3 * math.Sqrt(q*(1-q)/maxWaitSamples)
				}
				if d := math.Abs(float64(p.got-ms(exact))) / float64(ms(tc.n)); d > tolerance {
					t.Errorf("p%d %v, exact %v: off by %.2f%% of the range, want at most %.2f%%", p.pct, p.got, ms(exact), 100*d, 100*tolerance)
				}
			}
		})
	}
}

// selectNth agrees with sorting at every index, on inputs with and without
// repeats, sorted, reversed and shuffled.
func TestSelectNth(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := map[string][]time.Duration{"empty": nil, "one": {7}}
	for _, n := range []int{2, 3, 10, 101, 1000} {
		var shuffled, repeats, sorted, reversed []time.Duration
		for i := range n {
			shuffled = append(shuffled, time.Duration(rng.IntN(1_000_000)))
			repeats = append(repeats, time.Duration(rng.IntN(3)))
			sorted = append(sorted, time.Duration(i))
			reversed = append(reversed, time.Duration(n-i))
		}
		for name, in := range map[string][]time.Duration{"shuffled": shuffled, "repeats": repeats, "sorted": sorted, "reversed": reversed} {
			inputs[fmt.Sprintf("%s %d", name, n)] = in
		}
	}
	for name, in := range inputs {
		want := slices.Clone(in)
		slices.Sort(want)
		for k := range in {
			s := slices.Clone(in)
			selectNth(s, k)
			if s[k] != want[k] || slices.Max(append(s[:k:k], s[k])) != s[k] || slices.Min(s[k:]) != s[k] {
				t.Fatalf("%s: selectNth(k=%d) put %v there (sorted: %v), or left a larger value before or smaller after", name, k, s[k], want[k])
			}
		}
	}
}

// seededEnqueue is an enqueue on a listener the BPF side knows only by the
// inode user space seeded: no queue numbers.
func seededEnqueue(ms int) *tracer.Event {
	return &tracer.Event{Kind: tracer.StateChange, Time: at(ms), Netns: lnKey.Netns, Local: lnAt,
		Old: tcpstate.SynRecv, New: tcpstate.Established, Enqueue: true, ListenerInode: lnKey.Inode}
}

func holderList(hs []tracer.Holder) string {
	var parts []string
	for _, h := range hs {
		p := strconv.Itoa(int(h.PID))
		if h.Accepts {
			p += "*"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}

// A pre-fork server: master 10 listens, workers 11 and 12 accept. A stall
// with no accept seen names every holder and says none was seen
// accepting; once 12 accepts, a stall names 12 alone. --pid matches any
// holder.
func TestAccountingHolders(t *testing.T) {
	a := NewAccounting(Config{Interval: 250 * time.Millisecond, Stall: 300 * time.Millisecond, Keep: (&filter.Filter{PIDs: []uint32{11}}).Match}, at(0))
	ln := dumped(0, 0)
	ln[0].Processes = []snapshot.Process{{PID: 10, Comm: "nginx"}, {PID: 11, Comm: "nginx"}, {PID: 12, Comm: "nginx"}}
	a.Holders().Load(ln, at(0), false)
	a.ObserveDump(at(0), ln)
	a.Observe(enqueue(10, 1, 0))
	var stalls []StallEvent
	for _, ms := range []int{250, 500} {
		stalls = append(stalls, a.Tick(at(ms)).Stalls...)
	}
	if len(stalls) != 1 || !stalls[0].Begin || holderList(stalls[0].Holders) != "10,11,12" || stalls[0].Acceptors != 0 || stalls[0].PID != 10 {
		t.Fatalf("stalls %+v, want one begin naming 10,11,12 with no acceptor", stalls)
	}
	a.Observe(accept(600, 0, 590*time.Millisecond))
	a.Observe(&tracer.Event{Kind: tracer.Accept, Time: at(610), Netns: lnKey.Netns, Local: lnAt,
		Current: tracer.Task{PID: 12, Comm: "nginx"}, Queue: tracer.QueueInfo{Known: true, Inode: lnKey.Inode, Backlog: 4}})
	a.Observe(enqueue(700, 1, 0))
	r := a.Tick(at(750))
	if len(r.Listeners) != 1 || holderList(r.Listeners[0].Holders) != "12*,42*,10,11" || r.Listeners[0].Acceptors != 2 {
		t.Fatalf("listeners %+v, want the one with holders 12*,42*,10,11 (kept: pid 11 holds it)", r.Listeners)
	}
	stalls = stalls[:0]
	for _, ms := range []int{1000, 1250} {
		stalls = append(stalls, a.Tick(at(ms)).Stalls...)
	}
	if len(stalls) != 1 || holderList(stalls[0].Holders) != "12*,42*" || stalls[0].Acceptors != 2 {
		t.Errorf("stalls %+v, want one naming the acceptors 12*,42*", stalls)
	}
	other := NewAccounting(Config{Keep: (&filter.Filter{PIDs: []uint32{99}}).Match}, at(0))
	other.Holders().Load(ln, at(0), false)
	other.ObserveDump(at(0), ln)
	if r := other.Tick(at(1000)); len(r.Listeners) != 0 {
		t.Errorf("--pid 99 kept %+v", r.Listeners)
	}
}

// A listener older than socklife with a queue already: the stall's age is
// a lower bound; enqueues that could not read the queue still count and
// move it, so an interval that ends over the backlog was partly full.
func TestAccountingOlderListener(t *testing.T) {
	a := NewAccounting(Config{Interval: time.Second, Stall: 300 * time.Millisecond}, at(0))
	a.ObserveDump(at(0), dumped(3, 0))
	a.Observe(seededEnqueue(200))
	a.Observe(seededEnqueue(400))
	r := a.Tick(at(1000))
	l := r.Listeners[0]
	if l.Enqueues != 2 || l.Queue != 5 || l.Peak != 5 {
		t.Errorf("enqueues %d queue %d peak %d, want 2 5 5", l.Enqueues, l.Queue, l.Peak)
	}
	if l.FullFraction < 0.59 || l.FullFraction > 0.61 {
		t.Errorf("full fraction %v, want 0.6 (over the backlog 4 from 400 ms)", l.FullFraction)
	}
	if len(r.Stalls) != 1 || !r.Stalls[0].AtLeast || !l.Stalled || !l.StalledAtLeast || l.StalledFor != time.Second {
		t.Errorf("stalls %+v, stalled %v for %v (lower bound %v); want a lower-bound stall of 1s", r.Stalls, l.Stalled, l.StalledFor, l.StalledAtLeast)
	}
	// A stall that began while socklife watched is exact.
	b := NewAccounting(Config{Interval: time.Second, Stall: 300 * time.Millisecond}, at(0))
	b.ObserveDump(at(0), dumped(0, 0))
	b.Observe(seededEnqueue(100))
	if r := b.Tick(at(1000)); len(r.Stalls) != 1 || r.Stalls[0].AtLeast || r.Listeners[0].StalledAtLeast {
		t.Errorf("stalls %+v: want an exact one", r.Stalls)
	}
}

// SYNs finding the SYN queue full: the listener's SYN queue past its backlog,
// and the namespace's cookie counters growing.
func TestAccountingSynFlood(t *testing.T) {
	a := NewAccounting(Config{Interval: time.Second}, at(0))
	a.ObserveDump(at(0), dumped(0, 0))
	a.ObserveNetstat(lnKey.Netns, Netstat{SyncookiesSent: 5})
	flood := synack(100)
	flood.Queue.SynQueue = 5 // the kernel holds backlog+1 half-open requests, then cookies
	a.Observe(flood)
	a.ObserveNetstat(lnKey.Netns, Netstat{SyncookiesSent: 27, ReqQFullDoCookies: 22})
	r := a.Tick(at(1000))
	if l := r.Listeners[0]; !l.SynQueueFull || l.SynPeak != 5 {
		t.Errorf("SYN queue peak %d full %v, want 5 (backlog+1) and full", l.SynPeak, l.SynQueueFull)
	}
	if len(r.Netns) != 1 || !r.Netns[0].SynFlood || r.Netns[0].Interval.SyncookiesSent != 22 {
		t.Errorf("netns %+v, want a SYN flood with 22 cookies sent", r.Netns)
	}
	a.ObserveNetstat(lnKey.Netns, Netstat{SyncookiesSent: 27, ReqQFullDoCookies: 22})
	if r := a.Tick(at(2000)); r.Netns[0].SynFlood || r.Listeners[0].SynQueueFull {
		t.Errorf("a quiet interval after it: %+v %+v", r.Netns, r.Listeners)
	}
}

// Grouped by pod, a pod's listeners follow its worst one; the host's stay
// where they rank.
func TestGroupListeners(t *testing.T) {
	var ls []ListenerReport
	for i, pod := range []string{"a", "", "b", "a", "", "b"} {
		ls = append(ls, ListenerReport{Key: Key{Inode: uint64(i)}, Comm: pod})
	}
	GroupListeners(ls, func(l *ListenerReport) string { return l.Comm })
	var got []uint64
	for _, l := range ls {
		got = append(got, l.Inode)
	}
	if want := []uint64{0, 3, 1, 2, 5, 4}; !slices.Equal(got, want) {
		t.Errorf("grouped %v, want %v", got, want)
	}
}

// The totals serve exports: accepts and the wait histogram since start
// (not reset by Tick), the time stalled, the current stall included, and
// sk_drops as read.
func TestAccountingTotals(t *testing.T) {
	a := NewAccounting(Config{Interval: time.Second, Stall: 300 * time.Millisecond}, at(0))
	a.ObserveDump(at(0), dumped(0, 7))
	a.Observe(enqueue(10, 1, 7))
	a.Observe(accept(20, 0, 50*time.Microsecond))
	a.Observe(enqueue(30, 1, 7))
	a.Tick(at(500)) // the stall begins (queue 1 since 30 ms)
	a.Observe(accept(900, 0, 870*time.Millisecond))
	a.Observe(enqueue(950, 1, 9))
	r := a.Tick(at(1000))
	l := r.Listeners[0]
	if l.AcceptsTotal != 2 || l.WaitHistogram.Count != 2 || l.SkDrops != 9 {
		t.Errorf("accepts %d, waits %d, sk_drops %d; want 2 2 9", l.AcceptsTotal, l.WaitHistogram.Count, l.SkDrops)
	}
	if l.StalledTotal != 870*time.Millisecond {
		t.Errorf("stalled %v in all, want 870ms (30..900 ms)", l.StalledTotal)
	}
	r = a.Tick(at(1500)) // stalled again since 950 ms: 550 ms so far
	if l := r.Listeners[0]; l.StalledTotal != 870*time.Millisecond+550*time.Millisecond {
		t.Errorf("stalled %v in all, want 1.42s: the ended stall and the current", l.StalledTotal)
	}
}

func TestWaitHistogram(t *testing.T) {
	var h WaitHistogram
	for _, d := range []time.Duration{0, 100 * time.Microsecond, 101 * time.Microsecond, time.Second, 11 * time.Second} {
		h.Add(d)
	}
	c := h.Cumulative()
	// le 100µs: 0 and 100µs (bounds are inclusive); le 250µs: +101µs;
	// le 1s: +1s; 11s only in +Inf (Count)
	if c[0] != 2 || c[1] != 3 || c[11] != 3 || c[12] != 4 || c[len(c)-1] != 4 || h.Count != 5 {
		t.Errorf("cumulative %v count %d", c, h.Count)
	}
	if h.Sum != 12*time.Second+201*time.Microsecond {
		t.Errorf("sum %v", h.Sum)
	}
	m := h.Merge(h)
	if m.Count != 10 || m.Cumulative()[0] != 4 || m.Sum != 2*h.Sum || h.Count != 5 {
		t.Errorf("merged %+v (and h %+v)", m, h)
	}
}

// Under serve the kernel counts accepts (tracer.ListenerAccepts) and each
// poll hands its running counts over: the interval's accepts are what they
// grew by, the totals and histogram are the kernel's, counts by inode and
// by port add up on one listener, an accept made since the stall began
// ends it, and the latest accept's process is an acceptor, named as the
// scan named it.
func TestAccountingKernelAccepts(t *testing.T) {
	a := NewAccounting(Config{Interval: time.Second, Stall: 300 * time.Millisecond}, at(0))
	a.ObserveDump(at(0), dumped(2, 0))
	a.ObserveListenerAccepts(nil)
	r := a.Tick(at(500))
	if len(r.Stalls) != 1 || !r.Stalls[0].Begin {
		t.Fatalf("stalls %+v, want one beginning: queue 2 and no accept for 500ms", r.Stalls)
	}

	var byInode, byPort tracer.ListenerAccepts
	byInode.Accepts, byInode.Waits[0], byInode.Waits[10] = 3, 1, 1 // 50µs, 200ms; one unknown
	byInode.WaitSum = 200*time.Millisecond + 50*time.Microsecond
	byInode.Last, byInode.Acceptor = at(600), 42
	byPort.Accepts, byPort.Last, byPort.Acceptor = 1, at(550), 43
	counts := map[tracer.AcceptKey]tracer.ListenerAccepts{
		{Netns: lnKey.Netns, Inode: lnKey.Inode}:                 byInode,
		{Netns: lnKey.Netns, Port: lnAt.Port()}:                  byPort,
		{Netns: lnKey.Netns, Inode: 999}:                         byInode, // no such listener
		{Netns: lnKey.Netns + 1, Port: lnAt.Port(), Inode: 1001}: byInode, // nor here
	}
	// a scan found the holders: the kernel's acceptor takes its name
	s := dumped(2, 0)
	s[0].Processes = []snapshot.Process{{PID: 42, Comm: "server"}, {PID: 43, Comm: "worker"}}
	a.Holders().Load(s, at(650), false)
	a.ObserveDump(at(700), dumped(0, 0))
	a.ObserveListenerAccepts(counts)
	r = a.Tick(at(700))
	l := r.Listeners[0]
	if l.Accepts != 4 || l.AcceptsTotal != 4 || l.WaitHistogram.Count != 2 || l.WaitHistogram.Sum != byInode.WaitSum {
		t.Errorf("accepts %d (total %d), waits %d summing %v; want 4 (4), 2 summing %v",
			l.Accepts, l.AcceptsTotal, l.WaitHistogram.Count, l.WaitHistogram.Sum, byInode.WaitSum)
	}
	if c := l.WaitHistogram.Cumulative(); c[0] != 1 || c[9] != 1 || c[10] != 2 {
		t.Errorf("cumulative waits %v, want 1 at 100µs, 2 from 250ms", c)
	}
	if len(r.Stalls) != 1 || r.Stalls[0].Begin || r.Stalls[0].For != 600*time.Millisecond || l.Stalled {
		t.Errorf("stalls %+v (stalled %v), want the stall ended by the accept at 600ms, 600ms long", r.Stalls, l.Stalled)
	}
	if l.Acceptors != 1 || holderList(l.Holders) != "42*,43" || l.Holders[0].Comm != "server" {
		t.Errorf("%d acceptors %s, want 42 (server), who made the latest accept, of 42 and 43", l.Acceptors, holderList(l.Holders))
	}

	byInode.Accepts = 5
	counts = map[tracer.AcceptKey]tracer.ListenerAccepts{{Netns: lnKey.Netns, Inode: lnKey.Inode}: byInode,
		{Netns: lnKey.Netns, Port: lnAt.Port()}: byPort}
	a.ObserveDump(at(1700), dumped(0, 0))
	a.ObserveListenerAccepts(counts)
	if l := a.Tick(at(1700)).Listeners[0]; l.Accepts != 2 || l.AcceptsTotal != 6 {
		t.Errorf("accepts %d, total %d; want 2 in the interval, 6 in all", l.Accepts, l.AcceptsTotal)
	}
}
