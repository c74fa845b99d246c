// Package exporter turns one collection of socklife's state (the live
// table's frame, the backlog accounting's report, the namespaces' counters)
// into Prometheus metrics, computed at scrape time as node_exporter's
// collectors do: nothing is kept twice and nothing goes stale. A scrape of a
// process leaking CLOSE_WAIT sockets shows, among the rest (docs/metrics.md):
//
//	socklife_process_close_wait_sockets{comm="python3",container="",pid="28490",pod="",pod_namespace=""} 12
//	socklife_process_open_fds{comm="python3",container="",pid="28490",pod="",pod_namespace=""} 37
//	socklife_process_max_fds{comm="python3",container="",pid="28490",pod="",pod_namespace=""} 20000
//
// Model is the pure part (built by Build from what the commands already
// compute); Collector caches one Model per interval, however many scrapes
// ask, and emits it. docs/metrics.md lists every metric.
package exporter

import (
	"cmp"
	"slices"
	"strconv"
	"time"

	"github.com/socklife/socklife/internal/backlog"
	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/topview"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// Model is one collection: every value a scrape shows.
type Model struct {
	Listeners []Listener
	Processes []Process // at most the cap, "other" last
	Netns     []Netns
	Tool      Tool
}

// Owner is the container and pod labels; "" for the host.
type Owner struct{ Container, Pod, PodNamespace string }

// Listener is one listening socket.
type Listener struct {
	Netns    uint32
	Listener string // ADDR:PORT
	Comm     string // its first holder
	Owner
	Queue, Limit                  uint32
	Drops, SynackRetrans, Accepts uint64
	Waits                         backlog.WaitHistogram
	Stalled                       bool
	StallSeconds                  float64
}

// OtherPID is the pid label of the series that sums the processes past
// the cap.
const OtherPID = "other"

// Process is one process holding CLOSE_WAIT sockets or a listener, or
// (PID OtherPID) the sum of those past the cap.
type Process struct {
	PID  string
	Comm string
	Owner
	CloseWait     int
	OldestSeconds float64
	// OpenFDs and MaxFDs (soft RLIMIT_NOFILE); FDsKnown false when /proc
	// could not tell (the process exited meanwhile).
	OpenFDs, MaxFDs uint64
	FDsKnown        bool
}

// Netns is one network namespace's counts.
type Netns struct {
	Netns      uint32
	Name       string
	States     [tcpstate.Max]int
	Totals     tracer.ConnTotals
	Netstat    backlog.Netstat
	HasNetstat bool
}

// Tool is socklife itself.
type Tool struct {
	Version, GoVersion, Kernel string
	Hooks                      []Hook
	// AcceptsMeasured says an accept hook is attached: without one, the
	// listeners' accepts, accept waits and stalls are left out, not shown
	// as zeros (a queue no accept() is seen draining is not stalled).
	AcceptsMeasured bool
	Loss            tracer.Loss
	// CollectionSeconds is how long the collection took.
	CollectionSeconds float64
}

// Hook is the hook one feature uses ("none" when off).
type Hook struct{ Feature, Hook string }

// Inputs are what Build reads: the values the commands compute already.
type Inputs struct {
	Frame   *topview.Frame
	Backlog *backlog.Report
	// States by netns (CountStates) and Totals by netns (the kernel's
	// counters).
	States map[uint32][tcpstate.Max]int
	Totals map[uint32]tracer.ConnTotals
	// NetnsName names a namespace; nil: none.
	NetnsName func(uint32) string
	// FDs reads a process's open fds and soft fd limit; nil: unknown.
	FDs func(pid uint32) (open, max uint64, ok bool)
	// MaxProcesses caps the process series; 0: no cap.
	MaxProcesses int
	Tool         Tool
}

// Build makes the Model of one collection.
func Build(in Inputs) Model {
	m := Model{Tool: in.Tool}
	if in.Backlog != nil {
		m.Listeners = listeners(in.Backlog.Listeners)
		slices.SortFunc(m.Listeners, func(a, b Listener) int {
			return cmp.Or(cmp.Compare(a.Netns, b.Netns), cmp.Compare(a.Listener, b.Listener))
		})
	}
	if in.Frame != nil {
		m.Processes = processes(in.Frame, in.FDs, in.MaxProcesses)
	}
	m.Netns = netns(in)
	return m
}

// listeners are one series per address a namespace listens on: the
// sockets of a SO_REUSEPORT group (a worker each) are summed, as their
// labels would be the same; the first names comm and container.
func listeners(rs []backlog.ListenerReport) []Listener {
	type key struct {
		netns uint32
		addr  string
	}
	at := map[key]int{}
	var out []Listener
	for i := range rs {
		l := listenerOf(&rs[i])
		k := key{l.Netns, l.Listener}
		j, ok := at[k]
		if !ok {
			at[k] = len(out)
			out = append(out, l)
			continue
		}
		o := &out[j]
		o.Queue += l.Queue
		o.Limit += l.Limit
		o.Drops += l.Drops
		o.SynackRetrans += l.SynackRetrans
		o.Accepts += l.Accepts
		o.Waits = o.Waits.Merge(l.Waits)
		o.Stalled = o.Stalled || l.Stalled
		o.StallSeconds = max64(o.StallSeconds, l.StallSeconds)
	}
	return out
}

func listenerOf(l *backlog.ListenerReport) Listener {
	return Listener{
		Netns: l.Netns, Listener: l.Local.String(), Comm: l.Comm, Owner: ownerOf(l.Container, l.InContainer),
		Queue: l.Queue, Limit: l.Backlog, Drops: uint64(l.SkDrops), SynackRetrans: l.SynackRetransTotal,
		Accepts: l.AcceptsTotal, Waits: l.WaitHistogram, Stalled: l.Stalled, StallSeconds: l.StalledTotal.Seconds(),
	}
}

func ownerOf(c container.Container, in bool) Owner {
	if !in {
		return Owner{}
	}
	name := c.Name
	if name == "" {
		name = c.ID[:min(12, len(c.ID))]
	}
	pod := c.Pod.Name
	if pod == "" {
		pod = c.Pod.UID
	}
	return Owner{Container: name, Pod: pod, PodNamespace: c.Pod.Namespace}
}

// processes are the CLOSE_WAIT holders and the listeners' holders, one
// series a pid, the most CLOSE_WAIT sockets first; past limit, the rest are
// summed into one OtherPID series (fds summed too: what they hold
// together; the oldest is the oldest of them).
func processes(f *topview.Frame, fds func(uint32) (uint64, uint64, bool), limit int) []Process {
	byPID := map[uint32]*Process{}
	var order []uint32
	add := func(pid uint32, comm string, o Owner) *Process {
		if p := byPID[pid]; p != nil {
			return p
		}
		p := &Process{PID: strconv.FormatUint(uint64(pid), 10), Comm: comm, Owner: o}
		byPID[pid] = p
		order = append(order, pid)
		return p
	}
	for i := range f.CloseWait.Processes {
		cp := &f.CloseWait.Processes[i]
		if cp.PID == 0 {
			continue // owner unknown: no process to name
		}
		p := add(cp.PID, cp.Comm, ownerOf(cp.Container, cp.InContainer))
		p.CloseWait += cp.Count
		p.OldestSeconds = max64(p.OldestSeconds, cp.Oldest.Seconds())
	}
	for _, l := range f.Listeners {
		o := ownerOf(l.Container, l.InContainer)
		for _, h := range l.Holders {
			add(h.PID, h.Comm, o)
		}
		if len(l.Holders) == 0 && l.PID != 0 {
			add(l.PID, l.Comm, o)
		}
	}
	slices.SortStableFunc(order, func(a, b uint32) int {
		return cmp.Or(-cmp.Compare(byPID[a].CloseWait, byPID[b].CloseWait), cmp.Compare(a, b))
	})
	var out []Process
	var other *Process
	for i, pid := range order {
		p := byPID[pid]
		if fds != nil {
			p.OpenFDs, p.MaxFDs, p.FDsKnown = fds(pid)
		}
		if limit <= 0 || i < limit {
			out = append(out, *p)
			continue
		}
		if other == nil {
			other = &Process{PID: OtherPID, FDsKnown: true}
		}
		other.CloseWait += p.CloseWait
		other.OldestSeconds = max64(other.OldestSeconds, p.OldestSeconds)
		other.OpenFDs += p.OpenFDs
		other.MaxFDs += p.MaxFDs
	}
	if other != nil {
		out = append(out, *other)
	}
	return out
}

func max64(a, b float64) float64 {
	if b > a {
		return b
	}
	return a
}

// netns joins the namespaces' states, totals and counters.
func netns(in Inputs) []Netns {
	by := map[uint32]*Netns{}
	get := func(ns uint32) *Netns {
		if n := by[ns]; n != nil {
			return n
		}
		n := &Netns{Netns: ns}
		if in.NetnsName != nil {
			n.Name = in.NetnsName(ns)
		}
		by[ns] = n
		return n
	}
	for ns, s := range in.States {
		get(ns).States = s
	}
	for ns, t := range in.Totals {
		get(ns).Totals = t
	}
	if in.Backlog != nil {
		for _, c := range in.Backlog.Netns {
			n := get(c.Netns)
			n.Netstat, n.HasNetstat = c.Total, true
		}
	}
	out := make([]Netns, 0, len(by))
	for _, n := range by {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b Netns) int { return cmp.Compare(a.Netns, b.Netns) })
	return out
}

// since is a duration in seconds, for a caller timing its collection.
func since(t time.Time) float64 { return time.Since(t).Seconds() }

// CountState adds s to the counts by netns and state, if its state is
// one the kernel has.
func CountState(m map[uint32][tcpstate.Max]int, s *snapshot.Socket) {
	if !s.State.Known() {
		return
	}
	c := m[s.Netns]
	c[s.State]++
	m[s.Netns] = c
}
