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
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/socklife/socklife/internal/container"
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
	// Container is the container the socket belongs to, if InContainer.
	Container   container.Container
	InContainer bool
}

// Group is what a Process row stands for.
type Group int

const (
	// ByProcess: one row a process.
	ByProcess Group = iota
	// ByContainer: one row a container, for all its processes; the
	// host's processes keep a row each.
	ByContainer
	// ByPod: one row a Kubernetes pod, for all its containers; a
	// container outside a pod a row of its own, as with ByContainer.
	ByPod
)

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

// GroupNames are the names ParseGroup takes, in Group order.
var GroupNames = []string{"process", "container", "pod"}

// ParseGroup reads a --by value.
func ParseGroup(s string) (Group, error) {
	for i, n := range GroupNames {
		if s == n {
			return Group(i), nil
		}
	}
	return 0, fmt.Errorf("unknown grouping %q (valid: %s)", s, strings.Join(GroupNames, ", "))
}

func (g Group) String() string {
	if int(g) < len(GroupNames) {
		return GroupNames[g]
	}
	return "group(" + strconv.Itoa(int(g)) + ")"
}

// Process is the CLOSE_WAIT picture of one process at one instant, or of
// the processes of one container or pod (see Group).
type Process struct {
	// PID and Comm are the process's; for a group, those of its process
	// with the most CLOSE_WAIT sockets, one of Processes.
	PID       uint32
	Comm      string
	Processes int // how many processes the row stands for
	// Container is the container of the process (a group: of its first
	// process; with ByPod the pod is what they share), if InContainer.
	Container   container.Container
	InContainer bool
	Count       int
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

// owner is what a row stands for: a process, or a container or pod (group
// set, pid and comm zero).
type owner struct {
	pid   uint32
	comm  string
	group string
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
	// By is what a row stands for; set it before the first Observe.
	By      Group
	window  time.Duration
	history map[owner][]point
	groups  map[owner]container.Container
	last    time.Time // the previous Observe
}

// NewWatch returns a Watch whose growth rates look back over window.
func NewWatch(window time.Duration) *Watch {
	return &Watch{window: window, history: map[owner][]point{}, groups: map[owner]container.Container{}}
}

// ownerOf is the row c counts in.
func (w *Watch) ownerOf(c *Conn) owner {
	var group string
	switch {
	case !c.InContainer || w.By == ByProcess:
		return owner{pid: c.PID, comm: c.Comm}
	case w.By == ByPod && c.Container.Pod.UID != "":
		group = "pod " + c.Container.Pod.UID
	default:
		group = "container " + c.Container.ID
	}
	o := owner{group: group}
	w.groups[o] = c.Container // what a row whose count fell to 0 stands for
	return o
}

// Observe records the CLOSE_WAIT sockets found at now and reports them.
// A process that held some before and none now stays in the history (its
// count fell to zero), so a drop is a negative growth, not a disappearance.
func (w *Watch) Observe(now time.Time, conns []Conn) Report {
	type acc struct {
		Process
		ports map[uint16]int
		peers map[netip.Addr]int
		pids  map[owner]int // a group's processes and their counts
	}
	byOwner := map[owner]*acc{}
	for i := range conns {
		c := &conns[i]
		o := w.ownerOf(c)
		a := byOwner[o]
		if a == nil {
			a = &acc{Process: Process{PID: c.PID, Comm: c.Comm, Container: c.Container, InContainer: c.InContainer},
				ports: map[uint16]int{}, peers: map[netip.Addr]int{}, pids: map[owner]int{}}
			byOwner[o] = a
		}
		a.Count++
		a.pids[owner{pid: c.PID, comm: c.Comm}]++
		a.ports[c.Local.Port()]++
		a.peers[c.Remote.Addr()]++
		if age, atLeast := c.age(now); age > a.Oldest || (age == a.Oldest && !atLeast) {
			a.Oldest, a.OldestAtLeast = age, atLeast
		}
	}
	for o := range w.history {
		if byOwner[o] == nil {
			byOwner[o] = &acc{Process: Process{PID: o.pid, Comm: o.comm}}
			if c, ok := w.groups[o]; ok {
				byOwner[o].Container, byOwner[o].InContainer = c, true
			}
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
		a.Processes = len(a.pids)
		if len(a.pids) > 1 { // a group's row is named by its busiest process
			best := 0
			for p, n := range a.pids {
				if n > best || n == best && p.pid < a.PID {
					a.PID, a.Comm, best = p.pid, p.comm, n
				}
			}
		}
		a.Ports = sortedCounts(a.ports, func(p uint16, n int) PortCount { return PortCount{p, n} },
			func(x, y PortCount) int { return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Port, y.Port)) })
		a.Peers = sortedCounts(a.peers, func(p netip.Addr, n int) PeerCount { return PeerCount{p, n} },
			func(x, y PeerCount) int { return cmp.Or(cmp.Compare(y.Count, x.Count), x.Peer.Compare(y.Peer)) })
		rep.Processes = append(rep.Processes, a.Process)
	}
	w.last = now
	for o := range w.groups {
		if _, kept := w.history[o]; !kept {
			delete(w.groups, o)
		}
	}
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
