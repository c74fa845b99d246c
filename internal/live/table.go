// Package live keeps the live socket table: every TCP socket on the host,
// its state and when it entered each one, its owner, its role and, for
// accepted sockets, its listener. It starts from a sock_diag snapshot and
// follows tracer events, without a gap between the two ("list, then
// watch": see Start), and resyncs from a fresh snapshot when events are lost.
//
// Table is the merge itself, with no BPF and no locking: Load a snapshot,
// Apply events. Tracker runs it against the kernel. A connection as
// Table.Each and Options.OnClose show it (a Conn, abridged):
//
//	{ID:29 Netns:4026531833 Local:127.0.0.1:47789 Remote:127.0.0.1:59852 State:CLOSE_WAIT
//	 Role:server Listener:0.0.0.0:47789 PID:3494 Comm:python3 SeenFromStart:true
//	 History:[SYN_RECV@23:23:08.038905 ESTABLISHED@23:23:08.038913 CLOSE_WAIT@23:23:08.038982]
//	 AcceptWait:27µs ClosedBy:remote}
//
// and one that predates the tracker, found by the snapshot:
//
//	{ID:3 Local:10.0.0.5:8080 Remote:10.0.0.9:51234 State:CLOSE_WAIT Role:server PID:812 Comm:java
//	 SeenFromStart:false History:[CLOSE_WAIT@unknown] AtLeast:23:20:01.5 ClosedBy:remote}
package live

import (
	"hash/maphash"
	"net/netip"
	"time"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/tracer"
)

// Slots live in fixed-size chunks so that growing the table never copies
// it and a million entries do not need one huge allocation.
const (
	chunkBits = 12
	chunkMask = 1<<chunkBits - 1
)

// Table is the set of live sockets. It is not safe for concurrent use.
type Table struct {
	chunks [][]entry
	free   uint32 // head of the free-slot list; 0: none
	used   uint32 // slots handed out so far; slot 0 is never used
	live   int

	// bySock finds an entry by its struct sock address once an event named it.
	bySock map[uint64]uint32
	// byTuple finds the entries no event has named yet (from a snapshot) by
	// a hash of (netns, local, remote); entries with the same hash (reuseport
	// listeners, or a collision) chain through entry.next.
	byTuple  map[uint64]uint32
	unjoined int
	seed     maphash.Seed

	// listening holds the listeners per (netns, port) by bound address, to
	// name an accepted socket's listener and to tell servers from clients
	// among the sockets a snapshot found.
	listening map[uint64]*listenPort

	comms         []string
	commIDs       map[string]uint32
	listenerNames []netip.AddrPort
	listenerIDs   map[netip.AddrPort]uint32

	counts   [tcpstate.Max]int
	timeWait int
	// unknownStates counts events refused for a state no full socket
	// passes through (Apply).
	unknownStates uint64
	nextID        uint64
	// snapshotAt is when the last snapshot ended (Unix ns).
	snapshotAt int64
	gone       goneSet

	onClose func(*Conn) error
	conn    Conn
	steps   [maxSteps]Step
}

type listenPort struct {
	// addrs are the addresses listened on, by listenerNames id, with how
	// many listeners each (a SO_REUSEPORT group has several)
	addrs   []boundAddr
	accepts uint64 // accept()s seen on the port since it started listening
}

type boundAddr struct {
	name uint32 // listenerNames id
	n    uint32
}

// NewTable returns an empty table. onClose, if not nil, is called for every
// socket that leaves the table (it closed, or a resync found it gone); an
// error it returns is returned by Apply, Load or Resync.
func NewTable(onClose func(*Conn) error) *Table {
	return &Table{
		bySock:        make(map[uint64]uint32),
		byTuple:       make(map[uint64]uint32),
		seed:          maphash.MakeSeed(),
		listening:     make(map[uint64]*listenPort),
		comms:         []string{""},
		commIDs:       make(map[string]uint32),
		listenerNames: []netip.AddrPort{{}},
		listenerIDs:   make(map[netip.AddrPort]uint32),
		onClose:       onClose,
	}
}

// UnknownStates is how many events Apply refused for a state no kernel
// has, or one no full socket moves from or to (TIME_WAIT, NEW_SYN_RECV).
func (t *Table) UnknownStates() uint64 { return t.unknownStates }

// Len is how many sockets the table tracks (TIME_WAIT ones are only counted).
func (t *Table) Len() int { return t.live }

// Counts returns how many tracked sockets are in each state, with
// TIME_WAIT taken from the last snapshot (SetTimeWait).
func (t *Table) Counts() [tcpstate.Max]int {
	c := t.counts
	c[tcpstate.TimeWait] = t.timeWait
	return c
}

// SetTimeWait sets the TIME_WAIT count: timewait sockets emit no events,
// only sock_diag sees them.
func (t *Table) SetTimeWait(n int) { t.timeWait = n }

// Each calls fn for every tracked socket until fn returns false. The Conn
// is reused between calls.
func (t *Table) Each(fn func(*Conn) bool) {
	for i := uint32(1); i <= t.used; i++ {
		if e := t.at(i); e.id != 0 {
			if !fn(t.fill(e)) {
				return
			}
		}
	}
}

func (t *Table) at(slot uint32) *entry {
	return &t.chunks[slot>>chunkBits][slot&chunkMask]
}

// alloc returns a zeroed slot with a fresh id.
func (t *Table) alloc() (uint32, *entry) {
	slot := t.free
	if slot != 0 {
		t.free = t.at(slot).next
	} else {
		t.used++
		slot = t.used
		if int(slot>>chunkBits) == len(t.chunks) {
			t.chunks = append(t.chunks, make([]entry, 1<<chunkBits))
		}
	}
	e := t.at(slot)
	*e = entry{}
	t.nextID++
	e.id = t.nextID
	t.live++
	return slot, e
}

// release removes the entry in slot from every index and frees the slot.
func (t *Table) release(slot uint32) {
	e := t.at(slot)
	if e.flags&flagJoined != 0 {
		delete(t.bySock, e.sock)
	} else {
		t.unlinkTuple(slot)
	}
	if e.role == RoleListener {
		t.unlisten(e)
	}
	t.counts[e.state]--
	t.live--
	*e = entry{next: t.free}
	t.free = slot
}

// begin puts a new entry in its first state, entered at at (0: unknown).
func (t *Table) begin(e *entry, s tcpstate.State, at int64) {
	t.counts[s]++
	e.state = s
	e.hist.push(s, at)
}

// setState moves e to state s, entered at at (0: unknown).
func (t *Table) setState(e *entry, s tcpstate.State, at int64) {
	if at != 0 {
		e.atLeast = 0
	}
	t.counts[e.state]--
	t.counts[s]++
	e.state = s
	e.hist.push(s, at)
}

func (t *Table) commID(pid uint32, comm string, e *entry) {
	if e.flags&flagOwnerKnown != 0 && e.pid == pid && t.comms[e.comm] == comm {
		return
	}
	id, ok := t.commIDs[comm]
	if !ok {
		id = uint32(len(t.comms))
		t.comms = append(t.comms, comm)
		t.commIDs[comm] = id
	}
	e.pid, e.comm = pid, id
	e.flags |= flagOwnerKnown
}

func (t *Table) listenerID(a netip.AddrPort) uint32 {
	id, ok := t.listenerIDs[a]
	if !ok {
		id = uint32(len(t.listenerNames))
		t.listenerNames = append(t.listenerNames, a)
		t.listenerIDs[a] = id
	}
	return id
}

func portKey(netns uint32, port uint16) uint64 { return uint64(netns)<<16 | uint64(port) }

func (t *Table) listen(e *entry) {
	k := portKey(e.netns, e.lport)
	lp := t.listening[k]
	if lp == nil {
		lp = &listenPort{}
		t.listening[k] = lp
	}
	name := t.listenerID(addrPort(e.local, e.lport))
	for i := range lp.addrs {
		if lp.addrs[i].name == name {
			lp.addrs[i].n++
			return
		}
	}
	lp.addrs = append(lp.addrs, boundAddr{name: name, n: 1})
}

func (t *Table) unlisten(e *entry) {
	k := portKey(e.netns, e.lport)
	lp := t.listening[k]
	if lp == nil {
		return
	}
	name := t.listenerIDs[addrPort(e.local, e.lport)]
	for i := range lp.addrs {
		if lp.addrs[i].name == name {
			if lp.addrs[i].n--; lp.addrs[i].n == 0 {
				lp.addrs = append(lp.addrs[:i], lp.addrs[i+1:]...)
			}
			break
		}
	}
	if len(lp.addrs) == 0 {
		delete(t.listening, k)
	}
}

// inferRole names the role of a socket no creation event was seen for:
// a server if a listener in its netns would have accepted it; a client if
// it goes to a listener in its netns (the peer is that listener's child);
// else unknown. A server whose listener has closed looks like a client
// that connected out: only its connect() or accept() would tell, and they
// happened before the tracer.
func (t *Table) inferRole(e *entry) {
	switch {
	case e.state == tcpstate.Listen:
		e.role = RoleListener
	case t.listensHere(e, addrPort(e.local, e.lport)):
		e.role = RoleServer
		e.listener, _ = t.listenerFor(e.netns, addrPort(e.local, e.lport))
	case t.listensHere(e, addrPort(e.remote, e.rport)):
		e.role = RoleClient
	default:
		e.role = RoleUnknown
	}
}

// listensHere says whether a listener in e's netns takes connections to
// a. A wildcard listener takes any address of the netns, which the table
// does not know, so only loopback, e's own local address and addresses a
// listener is bound to count as the netns's: a peer elsewhere may have a
// listener's port.
func (t *Table) listensHere(e *entry, a netip.AddrPort) bool {
	id, ok := t.listenerFor(e.netns, a)
	if !ok {
		return false
	}
	return a.Addr() == addrPort(e.local, e.lport).Addr() || a.Addr().IsLoopback() || t.listenerNames[id].Addr().Unmap() == a.Addr()
}

// listenerFor names the listener a socket with this local address (IPv4
// unmapped) was accepted from, as the kernel picks it: one bound to that
// very address, else the wildcard of its family: 0.0.0.0, or [::] which
// takes IPv4 too unless IPV6_V6ONLY (a v6only one never listed an IPv4
// child). ok is false if no listener would have taken it.
func (t *Table) listenerFor(netns uint32, local netip.AddrPort) (uint32, bool) {
	lp := t.listening[portKey(netns, local.Port())]
	if lp == nil {
		return 0, false
	}
	candidates := [3]netip.Addr{local.Addr(), netip.IPv6Unspecified()}
	if local.Addr().Is4() {
		candidates[1], candidates[2] = netip.IPv4Unspecified(), netip.IPv6Unspecified()
	}
	for _, a := range candidates {
		if !a.IsValid() {
			continue
		}
		id, ok := t.listenerIDs[netip.AddrPortFrom(a, local.Port())]
		if !ok {
			continue
		}
		for _, b := range lp.addrs {
			if b.name == id {
				return id, true
			}
		}
	}
	return 0, false
}

// fill turns e into t.conn.
func (t *Table) fill(e *entry) *Conn {
	c := &t.conn
	*c = Conn{
		ID: e.id, Sock: e.sock, Inode: e.inode, Netns: e.netns, Family: e.family,
		Local: addrPort(e.local, e.lport), Remote: addrPort(e.remote, e.rport), Ifindex: e.ifindex,
		State: e.state, Role: e.role, Listener: t.listenerNames[e.listener],
		OwnerKnown: e.flags&flagOwnerKnown != 0, PID: e.pid, Comm: t.comms[e.comm], CgroupID: e.cgroupID, SockCgroupID: e.sockCgroup,
		SeenFromStart:   e.flags&flagSeenFromStart != 0,
		AtLeast:         unixTime(e.atLeast),
		AcceptWait:      time.Duration(e.acceptWait),
		AcceptWaitKnown: e.flags&flagAcceptWaitKnown != 0,
		ClosedBy:        e.closedBy,
	}
	for i := range e.hist.n {
		s := Step{State: e.hist.states[i], EnteredAt: unixTime(e.hist.at[i])}
		t.steps[i] = s
		switch s.State {
		case tcpstate.SynSent, tcpstate.SynRecv:
			if c.OpenedAt.IsZero() {
				c.OpenedAt = s.EnteredAt
			}
		case tcpstate.Established:
			c.EstablishedAt = s.EnteredAt
		}
	}
	c.History = t.steps[:e.hist.n]
	if e.role == RoleListener {
		if lp := t.listening[portKey(e.netns, e.lport)]; lp != nil {
			c.Accepts = lp.accepts
		}
	}
	if e.hist.n > 0 {
		c.Since = c.History[e.hist.n-1].EnteredAt
	}
	return c
}

// closeOut reports the entry in slot as closed at closedAt (0: unknown)
// and removes it.
func (t *Table) closeOut(slot uint32, closedAt int64, ev *tracer.Event) error {
	var err error
	if t.onClose != nil {
		c := t.fill(t.at(slot))
		c.Closed, c.ClosedAt = true, unixTime(closedAt)
		if ev != nil && ev.HasClose {
			c.HasStats = true
			c.Stats = ev.Close
		}
		err = t.onClose(c)
	}
	t.release(slot)
	return err
}
