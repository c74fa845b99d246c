package tracer

import (
	"net/netip"
	"time"

	"github.com/socklife/socklife/internal/tcpstate"
)

// Kind says what an Event records.
type Kind uint8

const (
	// StateChange is one TCP state transition (sock:inet_sock_set_state).
	StateChange Kind = 1
	// Accept is a child socket taken off its listener's queue by accept().
	Accept Kind = 2
	// SynackRetransmit is a listener resending a SYN-ACK: the client's
	// final ACK was dropped (accept queue full) or lost. Sock is the
	// listener, Remote the client. Only with Options.Backlog.
	SynackRetransmit Kind = 3
)

func (k Kind) String() string {
	switch k {
	case StateChange:
		return "state"
	case Accept:
		return "accept"
	case SynackRetransmit:
		return "synack_retransmit"
	}
	return "unknown"
}

// OwnerSource says how the tracer knows who owns a socket.
type OwnerSource uint8

const (
	// OwnerUnknown: the socket predates the tracer and has not yet done
	// anything in its owner's context; Owner is zero.
	OwnerUnknown OwnerSource = iota
	// OwnerTask: the owner ran listen, connect, close or accept on it.
	OwnerTask
	// OwnerListener: a child not accepted yet; Owner is the process that
	// made its listener (or the tracer's seed of it). The connection
	// belongs to every holder of the listener until one accepts it.
	OwnerListener
	// OwnerSnapshot: a socket older than the tracer; Owner is the process
	// the start-up /proc scan found holding it (Tracer.SeedOwners).
	OwnerSnapshot
)

func (s OwnerSource) String() string {
	switch s {
	case OwnerTask:
		return "task"
	case OwnerListener:
		return "listener"
	case OwnerSnapshot:
		return "snapshot"
	}
	return "unknown"
}

// Task is a process as a BPF program saw it.
type Task struct {
	PID      uint32 // thread group id: the process
	Comm     string
	CgroupID uint64 // cgroup v2 id
}

// Holder is one process holding a listener's socket. The tracer sees one
// owner per socket; a listener may have many holders (a pre-fork server's
// master and workers), which the caller finds in /proc.
type Holder struct {
	PID  uint32
	Comm string
	// Accepts says it was seen calling accept() on the listener.
	Accepts bool
}

// CloseStats are the connection's totals, read as it enters CLOSE.
type CloseStats struct {
	BytesAcked    uint64 // sent by us and acknowledged by the peer
	BytesReceived uint64
	TotalRetrans  uint32
	SRTT          time.Duration // smoothed round-trip time
}

// QueueInfo is a listener's queues as a BPF hook read them, for backlog
// accounting. An Accept carries it when the hook saw the listener; with
// Options.Backlog, so do a child's SYN_RECV->ESTABLISHED (the moment it
// enters the accept queue) and every SynackRetransmit.
type QueueInfo struct {
	// Known says the fields below are filled.
	Known    bool
	Listener uint64 // the listener's struct sock address
	// Inode is the listener socket's inode, sock_diag's idiag_inode: how
	// a listener from an event is matched with one from a dump.
	Inode uint64
	// Len is the accept-queue length after this enqueue or dequeue;
	// Backlog the listen() backlog. The queue is full when Len > Backlog.
	Len, Backlog uint32
	// SynQueue is the request (SYN) queue length: half-open connections.
	SynQueue uint32
	// Drops is the listener's sk_drops: overflows and other drops since
	// it was created, what ss -tlnm shows as "d".
	Drops uint32
}

// Event is one decoded ring-buffer record. The reader reuses it: copy what
// you keep.
type Event struct {
	Kind Kind
	Hook Hook // the hook that wrote the event
	Time time.Time
	// Sock is the kernel's struct sock address: the socket's identity for
	// as long as it lives (reused after CLOSE).
	Sock   uint64
	Netns  uint32
	Family uint8 // unix.AF_INET or unix.AF_INET6
	// Local and Remote are the socket's addresses; v4-mapped IPv6 addresses
	// (a dual-stack socket talking IPv4) are shown as IPv4.
	Local, Remote netip.AddrPort
	// Ifindex is the socket's bound device when an address is link-local
	// IPv6: the zone (%eth0) such an address means nothing without. 0
	// for any other socket.
	Ifindex uint32
	// SockCgroupID is the cgroup v2 id the socket was created in (a child
	// takes its listener's): the container of a socket whose owner is
	// unknown or has passed it to a host process. 0: the kernel keeps none.
	SockCgroupID uint64
	// Old and New are the states of the transition. For Accept both hold
	// the child's current state.
	Old, New tcpstate.State

	Owner       Task
	OwnerSource OwnerSource
	// Current is whoever ran when the hook fired: in softirq, not the owner.
	Current Task

	// InState is the time spent in Old (for Accept: since the handshake
	// completed, the wait in the accept queue) when InStateKnown; a socket
	// the tracer did not see enter Old has InStateKnown false.
	InState      time.Duration
	InStateKnown bool

	// Close is filled when HasClose: a StateChange into CLOSE.
	Close    CloseStats
	HasClose bool
	// ListenerInode names the listener a socket came from (its socket
	// inode, as sock_diag's): for a child from its handshake on, for an
	// accept or an enqueue the listener it left or entered. 0: unknown or
	// not a child. It is how the listener's holders are found.
	ListenerInode uint64
	// Holders, set by the caller, are the processes holding the listener
	// of a child not accepted yet (OwnerListener), those seen accepting
	// first: the connection is theirs until one accepts it. The tracer
	// leaves it nil; formatting shows them when set.
	Holders []Holder
	// Enqueue marks a child entering its listener's accept queue (its
	// SYN_RECV->ESTABLISHED, with Options.Backlog). Queue describes the
	// queue when the tracer knows the listener's sock; a listener seeded
	// from a snapshot has only ListenerInode until its first accept.
	Enqueue bool
	// Queue describes the listener's queues when Queue.Known (see
	// QueueInfo): for an Accept the listener it left (whose port is Local's).
	Queue QueueInfo
}
