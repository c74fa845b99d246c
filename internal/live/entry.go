package live

import (
	"net/netip"
	"time"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/tracer"
)

// Role says how a connection came to be.
type Role uint8

const (
	RoleUnknown  Role = iota
	RoleClient        // connected out (connect())
	RoleServer        // accepted from a listener
	RoleListener      // a listening socket
)

func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleServer:
		return "server"
	case RoleListener:
		return "listener"
	}
	return "unknown"
}

// ClosedBy says who started the end of a connection.
type ClosedBy uint8

const (
	ClosedByUnknown ClosedBy = iota
	ClosedByLocal            // we sent the first FIN
	ClosedByRemote           // the peer sent the first FIN
	ClosedByReset            // it ended without a FIN exchange (RST, refused connect)
)

func (c ClosedBy) String() string {
	switch c {
	case ClosedByLocal:
		return "local"
	case ClosedByRemote:
		return "remote"
	case ClosedByReset:
		return "reset"
	}
	return "unknown"
}

// maxSteps bounds the states an entry remembers. No legal TCP path from
// SYN_SENT or SYN_RECV to CLOSE passes through more than six states
// (simultaneous open and close included); the seventh slot is for a socket
// first seen in the snapshot whose states were then lost and resynced.
const maxSteps = 7

// history is the states an entry went through, oldest first, with the
// times it entered them as Unix nanoseconds (0: not seen).
type history struct {
	at     [maxSteps]int64
	states [maxSteps]tcpstate.State
	n      uint8
}

// push records entering s at t (0 if unknown). When full, the last slot is
// overwritten: the first states (how it opened) and the current one matter most.
func (h *history) push(s tcpstate.State, t int64) {
	if h.n == maxSteps {
		h.n--
	}
	h.states[h.n], h.at[h.n] = s, t
	h.n++
}

// entry flags.
const (
	flagSeenFromStart = 1 << iota // the tracer saw the socket being created
	flagOwnerKnown
	flagAcceptWaitKnown
	flagJoined  // an event named its sock pointer (not only a snapshot)
	flagConfirm // scratch mark used by resync
)

// OwnerCgroup is the cgroup of c's owner, 0 when the owner is unknown.
func (c *Conn) OwnerCgroup() uint64 {
	if !c.OwnerKnown {
		return 0
	}
	return c.CgroupID
}

// entry is one tracked socket. It holds no pointers, so a table of a
// million entries costs the garbage collector nothing to scan; strings
// (command names, listener addresses) are interned ids.
type entry struct {
	id       uint64
	sock     uint64 // struct sock address; 0 for a snapshot entry no event named yet
	inode    uint64
	cgroupID uint64 // the owner's
	// sockCgroup is the cgroup the socket was created in (see
	// tracer.Event.SockCgroupID); 0: not known
	sockCgroup uint64
	local      [16]byte // v4-mapped for IPv4
	remote     [16]byte
	lport      uint16
	rport      uint16
	netns      uint32
	pid        uint32
	comm       uint32 // index into Table.comms; 0: unknown
	listener   uint32 // index into Table.listenerNames; 0: none
	next       uint32 // next slot with the same tuple hash, or on the free list
	ifindex    uint32 // bound device: a link-local address's zone
	hist       history
	// acceptWait is the accept-queue wait in ns. atLeast (Unix ns) is when
	// a snapshot found the socket in its state, entered at an unknown time.
	acceptWait int64
	atLeast    int64
	state      tcpstate.State
	family     uint8
	role       Role
	closedBy   ClosedBy
	flags      uint8
}

func addrPort(a [16]byte, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port)
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Step is one state of a connection's life.
type Step struct {
	State tcpstate.State
	// EnteredAt is zero when the socket entered the state before the
	// tracer saw it.
	EnteredAt time.Time
}

// Conn is a tracked socket as readers see it. A Conn passed to a callback
// is valid only during the call: History is reused.
type Conn struct {
	ID     uint64 // unique within one table
	Sock   uint64 // kernel struct sock address, 0 if no event named it yet
	Inode  uint64 // 0 unless a snapshot saw it
	Netns  uint32
	Family uint8 // unix.AF_INET or unix.AF_INET6
	// Local and Remote are unmapped (a dual-stack socket talking IPv4
	// shows IPv4 addresses), as tracer events show them.
	Local, Remote netip.AddrPort
	// Ifindex is the device the socket is bound to, in Netns: what a
	// link-local address needs beside it (its zone). 0 for none.
	Ifindex uint32
	State   tcpstate.State
	Role    Role
	// Listener is the listening address an accepted socket came from; not
	// valid for other roles or when unknown.
	Listener netip.AddrPort

	OwnerKnown bool
	PID        uint32
	Comm       string
	CgroupID   uint64
	// SockCgroupID is the cgroup the socket was created in (a child: its
	// listener's), 0 when not known: with CgroupID, its container.
	SockCgroupID uint64

	// SeenFromStart is false for a socket that predates the tracer: its
	// first steps have no EnteredAt and OpenedAt is zero.
	SeenFromStart bool
	History       []Step
	// Since is when it entered State, zero if unknown. Then AtLeast is the
	// time of the snapshot that found it in State: its age in State is at
	// least time.Since(AtLeast).
	Since, AtLeast time.Time
	// OpenedAt is when it entered SYN_SENT or SYN_RECV; EstablishedAt when
	// it entered ESTABLISHED. Zero when not seen.
	OpenedAt, EstablishedAt time.Time

	AcceptWait      time.Duration
	AcceptWaitKnown bool
	// Accepts counts, for a listener, the accept()s seen on its port (all
	// listeners on it: SO_REUSEPORT ones share the count) since it started
	// listening or the tracker started: a rate is the change over time.
	Accepts  uint64
	ClosedBy ClosedBy

	// For a closed connection (OnClose) only.
	Closed   bool
	ClosedAt time.Time // zero when the close was lost (found by a resync)
	Stats    tracer.CloseStats
	HasStats bool
}
