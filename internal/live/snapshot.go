package live

import (
	"time"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// tracked says whether a snapshot socket becomes an entry: TCP sockets
// with a kernel life of their own. TIME_WAIT sockets are only counted;
// request socks and unconnected ones never emit an event.
func tracked(s *snapshot.Socket) bool {
	if s.Protocol != snapshot.TCP || !s.State.Known() {
		return false
	}
	switch s.State {
	case tcpstate.TimeWait, tcpstate.NewSynRecv, tcpstate.Close:
		return false
	}
	return true
}

func countTimeWait(socks []snapshot.Socket) int {
	n := 0
	for i := range socks {
		if socks[i].Protocol == snapshot.TCP && socks[i].State == tcpstate.TimeWait {
			n++
		}
	}
	return n
}

// Load adds the sockets of a snapshot taken at `at`, before any event is
// applied: they start with unknown entry times. Listeners go first so the
// others can be told servers or clients.
func (t *Table) Load(socks []snapshot.Socket, at time.Time) {
	t.timeWait = countTimeWait(socks)
	for _, listeners := range []bool{true, false} {
		for i := range socks {
			s := &socks[i]
			if tracked(s) && (s.State == tcpstate.Listen) == listeners {
				t.loadOne(s, at)
			}
		}
	}
}

func (t *Table) loadOne(s *snapshot.Socket, at time.Time) uint32 {
	slot, e := t.alloc()
	e.netns, e.family, e.inode, e.cgroupID = s.Netns, s.Family, s.Inode, s.CgroupID
	e.sockCgroup = s.CgroupID
	setTupleAddrs(e, s.Local, s.Remote)
	e.ifindex = s.Interface
	t.begin(e, s.State, 0)
	t.snapshotFacts(e, s, at)
	t.inferRole(e)
	if e.role == RoleListener {
		t.listen(e)
	}
	t.linkTuple(slot)
	return slot
}

// snapshotFacts copies what the snapshot knows that events do not: the
// owner (from /proc), and a lower bound on the time in the current state.
func (t *Table) snapshotFacts(e *entry, s *snapshot.Socket, at time.Time) {
	e.atLeast = at.UnixNano()
	inferClosedBy(e, s.State)
	if len(s.Processes) > 0 && e.flags&flagOwnerKnown == 0 {
		t.commID(uint32(s.Processes[0].PID), s.Processes[0].Comm, e)
	}
	if e.inode == 0 {
		e.inode = s.Inode
	}
}

// SetSnapshotTime says when the last snapshot (Load or Resync) ended:
// a listener created before then may be in it already, and is merged with
// it rather than counted twice.
func (t *Table) SetSnapshotTime(at time.Time) { t.snapshotAt = at.UnixNano() }

// Resync reconciles the table with a fresh snapshot after events were
// lost. A tracked socket the snapshot still has keeps its history (with a
// step of unknown time if its state changed meanwhile); one it lacks closed
// unseen and is reported to onClose with no close time; a socket only the
// snapshot has is added. Replay the events buffered during the snapshot
// afterwards. Entries a pending (buffered) event names are kept even if
// the snapshot lacks them: those events will close them. An entry no
// event has named yet (from a snapshot) is named by its tuple, as the
// event will join it: closing it here would make the event start a second
// entry for the same connection, and a second record.
func (t *Table) Resync(socks []snapshot.Socket, at time.Time, pending []tracer.Event) error {
	pendingSock := make(map[uint64]bool, len(pending))
	pendingTuple := make(map[tupleKey]bool, len(pending))
	for i := range pending {
		pendingSock[pending[i].Sock] = true
		pendingTuple[tupleKey{pending[i].Netns, tupleOf(&pending[i])}] = true
	}
	isPending := func(e *entry) bool {
		if e.flags&flagJoined != 0 {
			return pendingSock[e.sock]
		}
		return pendingTuple[tupleKey{e.netns, tupleFromEntry(e)}]
	}
	t.timeWait = countTimeWait(socks)
	// the previous resync's sockets: their events are older than this
	// snapshot, which is confirmation enough
	t.gone = goneSet{}
	index := make(map[uint64][]uint32, t.live)
	for i := uint32(1); i <= t.used; i++ {
		if e := t.at(i); e.id != 0 {
			e.flags &^= flagConfirm
			h := t.hash(e.netns, tupleFromEntry(e))
			index[h] = append(index[h], i)
		}
	}
	for _, listeners := range []bool{true, false} {
		for i := range socks {
			s := &socks[i]
			if !tracked(s) || (s.State == tcpstate.Listen) != listeners {
				continue
			}
			if slot := t.match(index, s); slot != 0 {
				t.confirm(t.at(slot), s, at)
				continue
			}
			t.at(t.loadOne(s, at)).flags |= flagConfirm
		}
	}
	for i := uint32(1); i <= t.used; i++ {
		if e := t.at(i); e.id != 0 && e.flags&flagConfirm == 0 && !isPending(e) {
			t.gone.add(e, at.UnixNano())
			if err := t.closeOut(i, 0, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// match finds an unconfirmed entry for s, preferring the same inode
// (reuseport listeners share a tuple).
func (t *Table) match(index map[uint64][]uint32, s *snapshot.Socket) uint32 {
	var tp tuple
	tp.local, tp.remote = s.Local.Addr().As16(), s.Remote.Addr().As16()
	tp.lport, tp.rport = s.Local.Port(), s.Remote.Port()
	var found uint32
	for _, slot := range index[t.hash(s.Netns, tp)] {
		e := t.at(slot)
		if e.id == 0 || e.flags&flagConfirm != 0 || e.netns != s.Netns || tupleFromEntry(e) != tp {
			continue
		}
		if e.inode != 0 && e.inode == s.Inode {
			return slot
		}
		if found == 0 && (e.inode == 0 || s.Inode == 0) {
			found = slot
		}
	}
	return found
}

func (t *Table) confirm(e *entry, s *snapshot.Socket, at time.Time) {
	e.flags |= flagConfirm
	if e.state != s.State {
		t.setState(e, s.State, 0)
		e.atLeast = at.UnixNano()
	}
	inferClosedBy(e, s.State)
	if e.inode == 0 {
		e.inode = s.Inode
	}
}
