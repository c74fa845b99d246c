// Package closewait finds CLOSE_WAIT build-up: a socket stays in CLOSE_WAIT
// from the peer's FIN until its owner calls close(), so a count that keeps
// growing is a descriptor leak in that process, not a network problem.
//
// A Watch is fed the CLOSE_WAIT sockets of the live table at each interval
// and reports, per process, how many it holds, how fast that grows over a
// sliding window, how old the oldest is, and where they point.
package closewait

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// Conn is one CLOSE_WAIT socket.
type Conn struct {
	PID    uint32 // 0: owner unknown
	Comm   string
	Local  netip.AddrPort
	Remote netip.AddrPort
	// Since is when the socket entered CLOSE_WAIT. When the tracer did not
	// see it happen (the socket predates it) Since is zero and AtLeast is
	// when it was first found in CLOSE_WAIT: its age is a lower bound.
	Since, AtLeast time.Time
}

// age is how long c has been in CLOSE_WAIT at now, and whether that is only
// a lower bound.
func (c *Conn) age(now time.Time) (time.Duration, bool) {
	if !c.Since.IsZero() {
		return now.Sub(c.Since), false
	}
	if !c.AtLeast.IsZero() {
		return now.Sub(c.AtLeast), true
	}
	return 0, true
}

// Process is the CLOSE_WAIT picture of one process at one instant.
type Process struct {
	PID   uint32
	Comm  string
	Count int
	// GrowthPerMin is the change of Count per minute over the window (or
	// since the first sample, if the watch is younger than the window).
	// GrowthKnown says it rests on at least MinGrowthSpan (or the whole
	// window, if shorter) of history: one socket in the first second is
	// not "60 per minute". Unknown growth is 0.
	GrowthPerMin float64
	GrowthKnown  bool
	// Oldest is the age of the oldest socket; OldestAtLeast says it is a
	// lower bound because that socket predates the tracer.
	Oldest        time.Duration
	OldestAtLeast bool
	// Ports counts the sockets per local port, Peers per remote address,
	// most first.
	Ports []PortCount
	Peers []PeerCount
}

// PortCount is how many CLOSE_WAIT sockets a process holds on one local port.
type PortCount struct {
	Port  uint16
	Count int
}

// PeerCount is how many CLOSE_WAIT sockets a process holds to one peer.
type PeerCount struct {
	Peer  netip.Addr
	Count int
}

// Report is every process holding CLOSE_WAIT sockets at one instant, the
// largest count first.
type Report struct {
	At        time.Time
	Total     int
	Processes []Process
}

type owner struct {
	pid  uint32
	comm string
}

type point struct {
	at    time.Time
	count int
}

// MinGrowthSpan is the least history a growth rate needs (see
// Process.GrowthKnown), unless the window itself is shorter.
const MinGrowthSpan = 10 * time.Second

// Age is how long c has been in CLOSE_WAIT at now; for a socket that
// predates the tracer, a lower bound (atLeast).
func (c *Conn) Age(now time.Time) (age time.Duration, atLeast bool) { return c.age(now) }

// Watch remembers each process's count over a sliding window.
type Watch struct {
	window  time.Duration
	history map[owner][]point
	last    time.Time // the previous Observe
}

// NewWatch returns a Watch whose growth rates look back over window.
func NewWatch(window time.Duration) *Watch {
	return &Watch{window: window, history: map[owner][]point{}}
}

// Observe records the CLOSE_WAIT sockets found at now and reports them.
// A process that held some before and none now stays in the history (its
// count fell to zero), so a drop is a negative growth, not a disappearance.
func (w *Watch) Observe(now time.Time, conns []Conn) Report {
	type acc struct {
		Process
		ports map[uint16]int
		peers map[netip.Addr]int
	}
	byOwner := map[owner]*acc{}
	for i := range conns {
		c := &conns[i]
		o := owner{c.PID, c.Comm}
		a := byOwner[o]
		if a == nil {
			a = &acc{Process: Process{PID: c.PID, Comm: c.Comm}, ports: map[uint16]int{}, peers: map[netip.Addr]int{}}
			byOwner[o] = a
		}
		a.Count++
		a.ports[c.Local.Port()]++
		a.peers[c.Remote.Addr()]++
		if age, atLeast := c.age(now); age > a.Oldest || (age == a.Oldest && !atLeast) {
			a.Oldest, a.OldestAtLeast = age, atLeast
		}
	}
	for o := range w.history {
		if byOwner[o] == nil {
			byOwner[o] = &acc{Process: Process{PID: o.pid, Comm: o.comm}}
		}
	}

	rep := Report{At: now, Total: len(conns)}
	for o, a := range byOwner {
		if _, known := w.history[o]; !known && !w.last.IsZero() {
			// Every Observe sees the whole table: a process absent from
			// the previous one held none then.
			w.history[o] = []point{{w.last, 0}}
		}
		var span time.Duration
		a.GrowthPerMin, span = w.record(o, now, a.Count)
		if a.GrowthKnown = span >= min(w.window, MinGrowthSpan); !a.GrowthKnown {
			a.GrowthPerMin = 0
		}
		if a.Count == 0 && a.GrowthPerMin == 0 && len(w.history[o]) == 0 {
			continue // gone, and its last count has left the window
		}
		a.Ports = sortedCounts(a.ports, func(p uint16, n int) PortCount { return PortCount{p, n} },
			func(x, y PortCount) int { return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Port, y.Port)) })
		a.Peers = sortedCounts(a.peers, func(p netip.Addr, n int) PeerCount { return PeerCount{p, n} },
			func(x, y PeerCount) int { return cmp.Or(cmp.Compare(y.Count, x.Count), x.Peer.Compare(y.Peer)) })
		rep.Processes = append(rep.Processes, a.Process)
	}
	w.last = now
	slices.SortFunc(rep.Processes, func(x, y Process) int {
		return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(y.GrowthPerMin, x.GrowthPerMin), cmp.Compare(x.PID, y.PID))
	})
	return rep
}

// record appends a sample for o, drops the samples that fell out of the
// window (keeping one at or before its start, the baseline), and returns
// the growth per minute since that baseline and how long ago that was.
func (w *Watch) record(o owner, now time.Time, count int) (float64, time.Duration) {
	h := append(w.history[o], point{now, count})
	start := now.Add(-w.window)
	drop := 0
	for drop+1 < len(h) && !h[drop+1].at.After(start) {
		drop++
	}
	h = h[drop:]
	if count == 0 && len(h) > 0 && allZero(h) {
		delete(w.history, o)
		return 0, 0
	}
	w.history[o] = h
	base := h[0]
	elapsed := now.Sub(base.at)
	if elapsed <= 0 {
		return 0, 0
	}
	return float64(count-base.count) / elapsed.Minutes(), elapsed
}

func allZero(h []point) bool {
	for _, p := range h {
		if p.count != 0 {
			return false
		}
	}
	return true
}

func sortedCounts[K comparable, T any](m map[K]int, mk func(K, int) T, order func(T, T) int) []T {
	out := make([]T, 0, len(m))
	for k, n := range m {
		out = append(out, mk(k, n))
	}
	slices.SortFunc(out, order)
	return out
}

// Limits are what closewait alerts on; a zero field is not checked.
type Limits struct {
	Count        int     // a process holding this many
	GrowthPerMin float64 // or gaining this many per minute (a known growth only)
}

// Offenders returns the processes of r over the limits, in r's order.
func (r *Report) Offenders(l Limits) []Process {
	var out []Process
	for _, p := range r.Processes {
		if (l.Count > 0 && p.Count >= l.Count) || (l.GrowthPerMin > 0 && p.GrowthKnown && p.GrowthPerMin >= l.GrowthPerMin) {
			out = append(out, p)
		}
	}
	return out
}
