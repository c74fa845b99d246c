package live

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/tracer"
)

// Apply updates the table with one tracer event. It returns what onClose
// returned if the event closed a socket.
func (t *Table) Apply(ev *tracer.Event) error {
	if !fullSockState(ev.Old) || !fullSockState(ev.New) {
		t.unknownStates++
		return nil
	}
	if ev.Kind == tracer.Accept {
		slot := t.bySock[ev.Sock]
		if slot == 0 && (ev.New == tcpstate.Close || t.lateForGone(ev)) {
			return nil // reset in the queue and already gone: nothing to track
		}
		if slot == 0 {
			slot = t.adopt(ev, ev.New)
		}
		e := t.at(slot)
		if ev.InStateKnown {
			e.acceptWait = int64(ev.InState)
			e.flags |= flagAcceptWaitKnown
		}
		t.owner(e, ev)
		k := portKey(e.netns, e.lport)
		if lp := t.listening[k]; lp != nil {
			lp.accepts++
		}
		return nil
	}
	slot := t.bySock[ev.Sock]
	if isCreation(ev) {
		if slot != 0 {
			// The sock was freed and reused without the CLOSE reaching
			// us (lost events): what was tracked under it is gone.
			if err := t.closeOut(slot, 0, nil); err != nil {
				return err
			}
		}
		t.create(ev)
		return nil
	}
	if slot == 0 {
		if t.lateForGone(ev) {
			return nil
		}
		slot = t.adopt(ev, ev.Old)
	}
	return t.transition(slot, ev)
}

// fullSockState reports whether a full socket moves from or to s. The
// tracer decodes no state the kernel lacks, but an event built elsewhere
// (a replay, a test, a corrupt record) must not index the state counts
// with one; and TIME_WAIT and NEW_SYN_RECV belong to the mini sockets the
// table only counts from snapshots (tracked), which no transition enters.
func fullSockState(s tcpstate.State) bool {
	return s.Known() && s != tcpstate.TimeWait && s != tcpstate.NewSynRecv
}

// lateForGone says whether ev, about a sock no event named yet, is a late
// event of a socket the last resync reported closed (goneSet), and not
// about one the snapshot has under the same sock pointer (freed, reused)
// or tuple.
func (t *Table) lateForGone(ev *tracer.Event) bool {
	return t.gone.has(ev) && t.lookupTuple(ev.Netns, tupleOf(ev)) == 0
}

// tupleKey names a socket by its addresses, as a snapshot does.
type tupleKey struct {
	netns uint32
	tp    tuple
}

// goneSet is the sockets the last resync reported closed, with the time of
// its snapshot: an event about one of them that is older than the snapshot
// was read late (it sat in the ring past the resync's catch-up), and the
// socket's end has been reported already. Without the set such an event
// would start an entry of its own, and a second record of the connection.
type goneSet struct {
	socks  map[uint64]int64   // joined entries, by sock
	tuples map[tupleKey]int64 // entries only a snapshot named, by tuple
}

func (g *goneSet) add(e *entry, at int64) {
	if e.flags&flagJoined != 0 {
		if g.socks == nil {
			g.socks = make(map[uint64]int64)
		}
		g.socks[e.sock] = at
		return
	}
	if g.tuples == nil {
		g.tuples = make(map[tupleKey]int64)
	}
	g.tuples[tupleKey{e.netns, tupleFromEntry(e)}] = at
}

// has says whether ev is a late event about a socket the last resync
// reported closed.
func (g *goneSet) has(ev *tracer.Event) bool {
	at, ok := g.socks[ev.Sock]
	if !ok {
		at, ok = g.tuples[tupleKey{ev.Netns, tupleOf(ev)}]
	}
	return ok && ev.Time.UnixNano() <= at
}

// isCreation says whether ev is a socket's first transition: connect,
// listen, or a child cloned from its listener.
func isCreation(ev *tracer.Event) bool {
	return ev.Old == tcpstate.Close && (ev.New == tcpstate.SynSent || ev.New == tcpstate.Listen) ||
		ev.Old == tcpstate.Listen && ev.New == tcpstate.SynRecv
}

// create starts tracking a socket the tracer saw being born.
func (t *Table) create(ev *tracer.Event) {
	slot, e := t.alloc()
	e.sock, e.netns, e.family = ev.Sock, ev.Netns, ev.Family
	e.flags = flagSeenFromStart | flagJoined
	setTuple(e, ev)
	t.bySock[ev.Sock] = slot
	t.begin(e, ev.New, ev.Time.UnixNano())
	switch ev.New {
	case tcpstate.SynSent:
		e.role = RoleClient
		// connect() has not picked the local port yet: the tuple comes
		// with SYN_SENT->ESTABLISHED.
	case tcpstate.SynRecv:
		// The child may still carry its listener's tuple (remote port 0)
		// or already its own (6.18 does): its own comes with
		// SYN_RECV->ESTABLISHED at the latest. The listener is named by
		// its own address (0.0.0.0:80, not the child's 10.0.0.2:80).
		e.role = RoleServer
		if id, ok := t.listenerFor(e.netns, ev.Local); ok {
			e.listener = id
		} else {
			e.listener = t.listenerID(ev.Local)
		}
		if e.rport != 0 && t.unjoined > 0 {
			t.absorb(e)
		}
	case tcpstate.Listen:
		e.role = RoleListener
		if t.unjoined > 0 && ev.Time.UnixNano() <= t.snapshotAt {
			t.absorb(e)
		}
		t.listen(e)
	}
	t.owner(e, ev)
}

// adopt joins an event about a socket not yet named by any event to the
// snapshot entry with its tuple, or starts tracking it from state from
// when there is none (it predates the tracer and the snapshot missed it).
func (t *Table) adopt(ev *tracer.Event, from tcpstate.State) uint32 {
	slot := t.lookupTuple(ev.Netns, tupleOf(ev))
	var e *entry
	if slot != 0 {
		t.unlinkTuple(slot)
		e = t.at(slot)
		// The event's old state is the truth at its time; what the
		// snapshot saw may be older or newer.
		if e.state != from {
			e.atLeast = 0
			t.counts[e.state]--
			t.counts[from]++
			e.state = from
		}
		e.hist = history{}
		e.hist.push(from, 0)
	} else {
		slot, e = t.alloc()
		e.netns, e.family = ev.Netns, ev.Family
		setTuple(e, ev)
		t.begin(e, from, 0)
		t.inferRole(e)
		if e.role == RoleListener {
			t.listen(e)
		}
	}
	e.sock = ev.Sock
	e.flags |= flagJoined
	t.bySock[ev.Sock] = slot
	inferClosedBy(e, from)
	return slot
}

// transition applies a state change to a tracked socket.
func (t *Table) transition(slot uint32, ev *tracer.Event) error {
	e := t.at(slot)
	if ev.Remote.Port() != 0 && (e.rport != ev.Remote.Port() || e.lport != ev.Local.Port()) {
		setTuple(e, ev)
		if t.unjoined > 0 {
			t.absorb(e)
		}
	}
	t.owner(e, ev)
	if e.closedBy == ClosedByUnknown && ev.New == tcpstate.Close {
		switch ev.Old {
		case tcpstate.Established, tcpstate.SynSent, tcpstate.SynRecv:
			e.closedBy = ClosedByReset
		}
	}
	if ev.New == tcpstate.Close {
		return t.closeOut(slot, ev.Time.UnixNano(), ev)
	}
	inferClosedBy(e, ev.New)
	if e.state == ev.New {
		// FIN_WAIT1 -> FIN_WAIT1 (shutdown, then close): still the one
		// stay that began at the first
		return nil
	}
	t.setState(e, ev.New, ev.Time.UnixNano())
	return nil
}

// inferClosedBy: a socket that reaches these states tells who sent the
// first FIN, whether or not we saw the moment.
func inferClosedBy(e *entry, s tcpstate.State) {
	if e.closedBy != ClosedByUnknown {
		return
	}
	switch s {
	case tcpstate.FinWait1, tcpstate.FinWait2, tcpstate.Closing:
		e.closedBy = ClosedByLocal
	case tcpstate.CloseWait, tcpstate.LastAck:
		e.closedBy = ClosedByRemote
	}
}

func (t *Table) owner(e *entry, ev *tracer.Event) {
	if ev.OwnerSource == tracer.OwnerUnknown {
		return
	}
	// A child's owner before accept is its listener's; accept (or
	// anything the owner does in its own context) says who really has it.
	if ev.OwnerSource == tracer.OwnerListener && e.flags&flagOwnerKnown != 0 {
		return
	}
	t.commID(ev.Owner.PID, ev.Owner.Comm, e)
	e.cgroupID = ev.Owner.CgroupID
}

// absorb drops an unjoined snapshot entry with e's tuple: the snapshot saw
// the same socket the events describe. What only the snapshot knew (inode,
// owner) moves to e.
func (t *Table) absorb(e *entry) {
	dup := t.lookupTuple(e.netns, tupleFromEntry(e))
	if dup == 0 {
		return
	}
	d := t.at(dup)
	if e.inode == 0 {
		e.inode = d.inode
	}
	if e.sockCgroup == 0 {
		e.sockCgroup = d.sockCgroup
	}
	if e.flags&flagOwnerKnown == 0 && d.flags&flagOwnerKnown != 0 {
		e.pid, e.comm, e.cgroupID = d.pid, d.comm, d.cgroupID
		e.flags |= flagOwnerKnown
	}
	t.release(dup)
}

// tuple is a socket's addresses in the form both sources share.
type tuple struct {
	local, remote [16]byte
	lport, rport  uint16
}

func tupleOf(ev *tracer.Event) tuple {
	return tuple{ev.Local.Addr().As16(), ev.Remote.Addr().As16(), ev.Local.Port(), ev.Remote.Port()}
}

func tupleFromEntry(e *entry) tuple { return tuple{e.local, e.remote, e.lport, e.rport} }

func setTuple(e *entry, ev *tracer.Event) {
	tp := tupleOf(ev)
	e.local, e.remote, e.lport, e.rport = tp.local, tp.remote, tp.lport, tp.rport
	if ev.Ifindex != 0 { // events name the device of link-local sockets only
		e.ifindex = ev.Ifindex
	}
	if ev.SockCgroupID != 0 {
		e.sockCgroup = ev.SockCgroupID
	}
}

func setTupleAddrs(e *entry, local, remote netip.AddrPort) {
	e.local, e.remote = local.Addr().As16(), remote.Addr().As16()
	e.lport, e.rport = local.Port(), remote.Port()
}

func (t *Table) hash(netns uint32, tp tuple) uint64 {
	var b [40]byte
	binary.LittleEndian.PutUint32(b[0:], netns)
	binary.LittleEndian.PutUint16(b[4:], tp.lport)
	binary.LittleEndian.PutUint16(b[6:], tp.rport)
	copy(b[8:], tp.local[:])
	copy(b[24:], tp.remote[:])
	return maphash.Bytes(t.seed, b[:])
}

// linkTuple indexes an entry no event has named yet.
func (t *Table) linkTuple(slot uint32) {
	e := t.at(slot)
	h := t.hash(e.netns, tupleFromEntry(e))
	e.next = t.byTuple[h]
	t.byTuple[h] = slot
	t.unjoined++
}

func (t *Table) unlinkTuple(slot uint32) {
	e := t.at(slot)
	h := t.hash(e.netns, tupleFromEntry(e))
	head := t.byTuple[h]
	switch {
	case head == slot && e.next == 0:
		delete(t.byTuple, h)
	case head == slot:
		t.byTuple[h] = e.next
	default:
		for p := head; p != 0; p = t.at(p).next {
			if pe := t.at(p); pe.next == slot {
				pe.next = e.next
				break
			}
		}
	}
	e.next = 0
	t.unjoined--
}

// lookupTuple finds an unjoined entry with this tuple, 0 if none.
func (t *Table) lookupTuple(netns uint32, tp tuple) uint32 {
	if t.unjoined == 0 {
		return 0
	}
	for s := t.byTuple[t.hash(netns, tp)]; s != 0; s = t.at(s).next {
		if e := t.at(s); e.netns == netns && tupleFromEntry(e) == tp {
			return s
		}
	}
	return 0
}
