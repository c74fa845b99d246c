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
	a := NewAccounting(Config{Port: 8080}, at(0))
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
	const sample = `TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops TCPHPHits
TcpExt: 3 1 1471 1473 99
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
`
	n, err := parseNetstat(strings.NewReader(sample))
	if err != nil || n.ListenOverflows != 1471 || n.ListenDrops != 1473 {
		t.Errorf("got %+v, %v; want 1471 overflows, 1473 drops", n, err)
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
