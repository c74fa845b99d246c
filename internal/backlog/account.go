package backlog

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/holders"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// Accounting turns events and samples into per-listener Reports. It is
// not safe for concurrent use: Run serialises it.
type Accounting struct {
	cfg       Config
	start     time.Time // of the current interval
	listeners map[Key]*listener
	// born holds listeners seen entering LISTEN after start, by netns and
	// port: their drops count from 0, not from the first reading.
	born   map[bornKey]time.Time
	netns  map[uint32]*netnsAccount
	stalls []StallEvent
	last   *listener // the one listener() found last
	// holders names each listener's holders and acceptors
	holders *holders.Registry
	// eventNetns are the namespaces events came from: each needs its
	// listeners dumped, --all-netns or not
	eventNetns map[uint32]bool
	lastNetns  uint32
}

type bornKey struct {
	netns uint32
	port  uint16
}

type netnsAccount struct {
	base, atStart, last Netstat
}

// forgetAfter drops a listener no dump or event has shown for this long.
const forgetAfter = 3

// NewAccounting starts an account at start.
func NewAccounting(cfg Config, start time.Time) *Accounting {
	return &Accounting{
		cfg: cfg.withDefaults(), start: start,
		listeners: map[Key]*listener{}, born: map[bornKey]time.Time{},
		netns: map[uint32]*netnsAccount{}, holders: holders.New(), eventNetns: map[uint32]bool{},
	}
}

// Holders is where the accounting finds each listener's holders: Load it
// with /proc scans (Run does).
func (a *Accounting) Holders() *holders.Registry { return a.holders }

// EventNetns lists the namespaces events came from.
func (a *Accounting) EventNetns() []uint32 {
	out := make([]uint32, 0, len(a.eventNetns))
	for ns := range a.eventNetns {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out
}

// accounted says whether Observe does anything with ev: listens, accepts
// and events that describe a listener's queue, a few of a connection's ten
// or so events.
func accounted(ev *tracer.Event) bool {
	return ev.Queue.Known || ev.Enqueue || ev.Kind == tracer.Accept ||
		(ev.Kind == tracer.StateChange && ev.New == tcpstate.Listen)
}

// Observe accounts one tracer event.
func (a *Accounting) Observe(ev *tracer.Event) {
	if ev.Netns != a.lastNetns {
		a.eventNetns[ev.Netns] = true
		a.lastNetns = ev.Netns
	}
	switch {
	case ev.Kind == tracer.StateChange && ev.New == tcpstate.Listen:
		a.born[bornKey{ev.Netns, ev.Local.Port()}] = ev.Time
		return
	case ev.Kind == tracer.Accept && !ev.Queue.Known:
		// the hook did not see the listener: the port still names it
		if l := a.byPort(ev.Netns, ev.Local.Port()); l != nil {
			a.accept(l, ev)
		}
		return
	case ev.Enqueue && !ev.Queue.Known:
		// a listener the BPF side knows only by the inode user space
		// seeded (or not at all): count it, estimate the queue
		l := a.listeners[Key{Netns: ev.Netns, Inode: ev.ListenerInode}]
		if l == nil {
			l = a.byPort(ev.Netns, ev.Local.Port())
		}
		if l != nil {
			l.seen = ev.Time
			l.enqueued(ev.Time)
		}
		return
	case !ev.Queue.Known || ev.Queue.Inode == 0:
		return
	}
	l := a.listener(Key{Netns: ev.Netns, Inode: ev.Queue.Inode}, ev.Local.Port(), ev.Queue.Drops)
	l.seen = ev.Time
	l.setDrops(ev.Queue.Drops)
	l.synq = ev.Queue.SynQueue
	l.synPeak = max(l.synPeak, l.synq)
	if !l.local.IsValid() {
		l.local = ev.Local
	}
	switch ev.Kind {
	case tracer.SynackRetransmit:
		l.synacks++
		l.synacksTot++
		return
	case tracer.Accept:
		l.bpfQueue = true
		l.sample(ev.Time, ev.Queue.Len, ev.Queue.Backlog)
		a.accept(l, ev)
	default: // enqueue
		l.learnCgroup(ev)
		l.bpfQueue = true
		l.sample(ev.Time, ev.Queue.Len, ev.Queue.Backlog)
		l.enqueues++
		if !l.acceptor && ev.OwnerSource != tracer.OwnerUnknown {
			l.pid, l.comm, l.ownerCgroup = ev.Owner.PID, ev.Owner.Comm, ev.Owner.CgroupID
		}
	}
}

func (a *Accounting) accept(l *listener, ev *tracer.Event) {
	l.learnCgroup(ev)
	l.accepted(ev.Time, ev.InState, ev.InStateKnown)
	l.pid, l.comm, l.acceptor, l.ownerCgroup = ev.Current.PID, ev.Current.Comm, true, ev.Current.CgroupID
	a.holders.Accepted(l.key, ev.Current.PID, ev.Current.Comm, ev.Time)
	if l.stalled {
		a.stalls = append(a.stalls, a.named(l, l.endStall(ev.Time)))
	}
}

// named puts on a stall event who should have accepted: the holders seen
// accepting, else every holder (Acceptors 0 says none was seen).
func (a *Accounting) named(l *listener, ev StallEvent) StallEvent {
	set := a.holders.Listener(l.key)
	switch {
	case set != nil && len(set.Holders) > 0:
		ev.Acceptors = set.Acceptors()
		ev.Holders = set.Holders
		if ev.Acceptors > 0 {
			ev.Holders = set.Holders[:ev.Acceptors]
		}
	case l.pid != 0:
		ev.Holders = []tracer.Holder{{PID: l.pid, Comm: l.comm, Accepts: l.acceptor}}
		ev.Acceptors = int(boolInt(l.acceptor))
	}
	if len(ev.Holders) > 0 {
		ev.PID, ev.Comm = ev.Holders[0].PID, ev.Holders[0].Comm
	}
	return ev
}

// withHolders puts a listener's holders on its report.
func (a *Accounting) withHolders(r *ListenerReport) {
	set := a.holders.Listener(r.Key)
	if set == nil || len(set.Holders) == 0 {
		return // the events' owner, if any (listener.report)
	}
	r.Holders, r.Acceptors = set.Holders, set.Acceptors()
	r.PID, r.Comm = set.Holders[0].PID, set.Holders[0].Comm
}

// byPort finds the one listener on a netns and port, nil if none or several.
func (a *Accounting) byPort(netns uint32, port uint16) *listener {
	var found *listener
	for k, l := range a.listeners {
		if k.Netns == netns && l.local.Port() == port {
			if found != nil {
				return nil
			}
			found = l
		}
	}
	return found
}

// listener finds or starts the account of k. A listener's drops count from
// its first reading, or from 0 if it was seen entering LISTEN.
func (a *Accounting) listener(k Key, port uint16, drops uint32) *listener {
	// a burst of events is mostly one listener's: skip the map
	if a.last != nil && a.last.key == k {
		return a.last
	}
	if l, ok := a.listeners[k]; ok {
		a.last = l
		return l
	}
	l := &listener{key: k, dropsBase: drops, drops: drops, dropsAtStart: drops}
	if _, ok := a.born[bornKey{k.Netns, port}]; ok {
		l.dropsBase, l.dropsAtStart = 0, 0
		delete(a.born, bornKey{k.Netns, port})
	}
	a.listeners[k] = l
	a.last = l
	return l
}

// ObserveDump takes a sock_diag dump of listeners (with MemInfo) made at t.
func (a *Accounting) ObserveDump(t time.Time, socks []snapshot.Socket) {
	for i := range socks {
		s := &socks[i]
		if s.Protocol != snapshot.TCP || s.State != tcpstate.Listen || s.Inode == 0 {
			continue
		}
		var drops uint32
		if s.MemInfo != nil {
			drops = s.MemInfo.Drops
		}
		l := a.listener(Key{Netns: s.Netns, Inode: s.Inode}, s.Local.Port(), drops)
		l.seen = t
		l.local = s.Local
		l.setDrops(drops)
		if s.CgroupID != 0 {
			l.sockCgroup = s.CgroupID
		}
		if l.pid == 0 && len(s.Processes) > 0 {
			l.pid, l.comm = uint32(s.Processes[0].PID), s.Processes[0].Comm
		}
		if l.bpfQueue {
			// events give every step; the dump only refreshes the backlog
			l.backlog = s.SendQ
			continue
		}
		l.sample(t, s.RecvQ, s.SendQ)
	}
}

// ObserveListenerAccepts takes the kernel's accept counts
// (tracer.ListenerAccepts, under serve's Aggregate): the polled input
// that stands for accept events. A listener no dump has shown yet is
// left for the next reading, whose counts still hold its accepts; one the
// kernel counted by port alone is found by its port, as an event is.
func (a *Accounting) ObserveListenerAccepts(counts map[tracer.AcceptKey]tracer.ListenerAccepts) {
	// a listener may have counts by inode and by port: summed first
	sums := map[*listener]tracer.ListenerAccepts{}
	for k, c := range counts {
		var l *listener
		if k.Inode != 0 {
			l = a.listeners[Key{Netns: k.Netns, Inode: k.Inode}]
		} else {
			l = a.byPort(k.Netns, k.Port)
		}
		if l == nil {
			continue
		}
		sum, ok := sums[l]
		if !ok {
			sums[l] = c
			continue
		}
		sum.Accepts += c.Accepts
		for i, n := range c.Waits {
			sum.Waits[i] += n
		}
		sum.WaitSum += c.WaitSum
		if c.Last.After(sum.Last) {
			sum.Last, sum.Acceptor = c.Last, c.Acceptor
		}
		sums[l] = sum
	}
	for l, c := range sums {
		// the kernel keeps the acceptor's pid: its name is the holder's
		var comm string
		if set := a.holders.Listener(l.key); set != nil {
			if i := slices.IndexFunc(set.Holders, func(h tracer.Holder) bool { return h.PID == c.Acceptor }); i >= 0 {
				comm = set.Holders[i].Comm
			}
		}
		l.fromKernel(c, comm)
		if c.Acceptor != 0 {
			a.holders.Accepted(l.key, c.Acceptor, comm, c.Last)
		}
		if l.stalled && c.Last.After(l.stallSince) {
			a.stalls = append(a.stalls, a.named(l, l.endStall(c.Last)))
		}
	}
}

// ObserveNetstat takes a netns's counters read at the end of the interval.
func (a *Accounting) ObserveNetstat(netns uint32, n Netstat) {
	acc, ok := a.netns[netns]
	if !ok {
		a.netns[netns] = &netnsAccount{base: n, atStart: n, last: n}
		return
	}
	acc.last = n
}

// Tick closes the interval at now and reports it.
func (a *Accounting) Tick(now time.Time) *Report {
	r := &Report{Start: a.start, End: now}
	for k, l := range a.listeners {
		if now.Sub(l.seen) > forgetAfter*a.cfg.Interval && !l.seen.IsZero() {
			delete(a.listeners, k)
			a.holders.Forget(k) // Run loads its dumps partial: gone is said here
			if a.last == l {
				a.last = nil
			}
			continue
		}
		if ev, changed := l.checkStall(now, a.cfg.Stall); changed {
			a.stalls = append(a.stalls, a.named(l, ev))
		}
		lr := l.report(a.start, now)
		a.withHolders(&lr)
		var keep bool
		if lr.Container, lr.InContainer, keep = a.containerOf(l); keep && a.keep(lr.Netns, lr.Local, lr.PID, lr.Comm, lr.Holders) {
			r.Listeners = append(r.Listeners, lr)
		}
	}
	sortedWorstFirst(r.Listeners)
	for _, ev := range a.stalls {
		// by the listener's holders: a stall names only its acceptors
		if l := a.listeners[ev.Key]; l != nil && a.keepListener(l) || l == nil && a.keep(ev.Key.Netns, ev.Local, ev.PID, ev.Comm, ev.Holders) {
			r.Stalls = append(r.Stalls, ev)
		}
	}
	a.stalls = a.stalls[:0]
	for ns, acc := range a.netns {
		interval := acc.last.Sub(acc.atStart)
		r.Netns = append(r.Netns, NetnsCounters{Netns: ns, Interval: interval, Total: acc.last.Sub(acc.base), SynFlood: interval.SynFlood()})
		acc.atStart = acc.last
	}
	slices.SortFunc(r.Netns, func(x, y NetnsCounters) int { return cmp.Compare(x.Netns, y.Netns) })
	a.start = now
	return r
}

// containerOf is a listener's container, and whether Config keeps it.
func (a *Accounting) containerOf(l *listener) (c container.Container, ok, keep bool) {
	c, ok = a.cfg.Containers.OfSocket(l.sockCgroup, l.ownerCgroup)
	return c, ok, a.cfg.KeepContainer == nil || a.cfg.KeepContainer(c, ok)
}

// keepListener is keep for a listener's account, holders and container.
func (a *Accounting) keepListener(l *listener) bool {
	if _, _, keep := a.containerOf(l); !keep {
		return false
	}
	if set := a.holders.Listener(l.key); set != nil && len(set.Holders) > 0 {
		return a.keep(l.key.Netns, l.local, 0, "", set.Holders)
	}
	return a.keep(l.key.Netns, l.local, l.pid, l.comm, nil)
}

// keep applies Config.Keep to a listener: its holders hs, else pid and
// comm (pid 0: unknown).
func (a *Accounting) keep(netns uint32, local netip.AddrPort, pid uint32, comm string, hs []tracer.Holder) bool {
	if a.cfg.Keep == nil {
		return true
	}
	if len(hs) == 0 && pid != 0 {
		hs = []tracer.Holder{{PID: pid, Comm: comm}}
	}
	return a.cfg.Keep(netns, local, netip.AddrPort{}, hs...)
}

// worstFirst orders stalled listeners first, then by drops, time full,
// queue fill and the slowest accept.
func worstFirst(x, y ListenerReport) int {
	return cmp.Or(
		-cmpBool(x.Stalled, y.Stalled),
		-cmp.Compare(x.Drops, y.Drops),
		-cmp.Compare(x.FullFraction, y.FullFraction),
		-cmp.Compare(QueueFill(x.Peak, x.Backlog), QueueFill(y.Peak, y.Backlog)),
		-cmp.Compare(x.Wait.P99, y.Wait.P99),
		cmp.Compare(x.Netns, y.Netns),
		netip.AddrPort.Compare(x.Local, y.Local),
		cmp.Compare(x.Inode, y.Inode),
	)
}

func cmpBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case x:
		return 1
	}
	return -1
}

// netnsPIDs names, per netns with a listener, a process that holds one:
// where to read that namespace's counters.
func (a *Accounting) netnsPIDs() map[uint32]uint32 {
	out := map[uint32]uint32{}
	for k, l := range a.listeners {
		pid := l.pid
		if set := a.holders.Listener(k); set != nil && len(set.Holders) > 0 {
			pid = set.Holders[0].PID
		}
		if pid != 0 {
			out[k.Netns] = pid
		} else if _, ok := out[k.Netns]; !ok {
			out[k.Netns] = 0
		}
	}
	return out
}

func sortedWorstFirst(r []ListenerReport) []ListenerReport {
	slices.SortFunc(r, worstFirst)
	return r
}

// GroupListeners puts the listeners with the same key together (a pod's, a
// container's), keeping the worst-first order within each group and
// ordering the groups by their worst listener; a listener whose key is ""
// (the host's) stays a group of its own.
func GroupListeners(ls []ListenerReport, key func(*ListenerReport) string) {
	rank := map[string]int{}
	for i := range ls {
		if k := key(&ls[i]); k != "" {
			if _, seen := rank[k]; !seen {
				rank[k] = i
			}
		}
	}
	groupOf := func(l *ListenerReport, i int) int {
		if r, ok := rank[key(l)]; ok {
			return r
		}
		return i
	}
	idx := make([]int, len(ls))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(groupOf(&ls[a], a), groupOf(&ls[b], b)) })
	sorted := make([]ListenerReport, len(ls))
	for i, j := range idx {
		sorted[i] = ls[j]
	}
	copy(ls, sorted)
}
