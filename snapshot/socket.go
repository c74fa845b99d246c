package snapshot

import (
	"net/netip"
	"time"

	"github.com/socklife/socklife/internal/tcpstate"
)

// Protocol is the kind of socket a Socket is.
type Protocol uint8

const (
	TCP Protocol = iota + 1
	UDP
	Unix
)

// String returns the Netid column ss prints ("tcp", "udp"; Unix sockets use
// their type, see Socket.Netid).
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case Unix:
		return "unix"
	}
	return "?"
}

// UnixType is the type of a Unix socket (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET).
type UnixType uint8

// Socket is one socket as sock_diag reports it, decoded. Zero values mean
// "not reported": a Socket from a dump without INET_DIAG_INFO has TCPInfo nil.
type Socket struct {
	Protocol Protocol
	// Family is unix.AF_INET, unix.AF_INET6 or unix.AF_UNIX.
	Family uint8
	State  tcpstate.State
	// Netns is the inode of the network namespace the socket lives in.
	Netns uint32

	// Local and Remote hold inet addresses. IPv4 sockets carry 4-byte
	// addresses; an IPv6 socket talking to IPv4 keeps its v4-mapped form, as ss prints it.
	Local, Remote netip.AddrPort
	// Interface is the index of the device the socket is bound to (SO_BINDTODEVICE
	// or a link-local scope), 0 for none.
	Interface uint32

	// RecvQ and SendQ are ss's Recv-Q and Send-Q. For a LISTEN socket RecvQ is
	// the accept-queue length and SendQ the backlog.
	RecvQ, SendQ uint32

	UID    uint32
	Inode  uint64 // 0 for timewait and request sockets: no struct socket behind them
	Cookie uint64 // sock_diag's socket cookie; stable for the socket's life

	// CgroupID is the cgroup v2 id of the socket (INET_DIAG_CGROUP_ID, 5.8+), 0 if unknown.
	CgroupID uint64

	// With Options.Info only: the TCP congestion control algorithm ("cubic").
	Congestion string
	// Mark is SO_MARK; the kernel reports it only to CAP_NET_ADMIN.
	Mark uint32
	// Shutdown has bit 0 set once reads are shut down, bit 1 for writes
	// (RCV_SHUTDOWN, SEND_SHUTDOWN): ss -e prints it as "<->" arrows.
	Shutdown uint8
	// With Options.Info only: TOS (IPv4) or traffic class (IPv6).
	TOS uint8
	// V6Only is IPV6_V6ONLY on an IPv6 socket (reported for full sockets).
	// (These small fields sit together, before UnixType, to keep Socket
	// at 208 bytes: 100,000 of them are in memory at once.)
	V6Only bool

	// Unix sockets only.
	UnixType  UnixType
	Path      string // bound path; abstract names start with "@"
	PeerInode uint64

	TCPInfo *TCPInfo
	MemInfo *MemInfo
	// Timer is the pending TCP timer (retransmit, keepalive, TIME-WAIT...), nil if none.
	Timer *Timer

	// Processes that hold a file descriptor for the socket, filled by the /proc scan.
	Processes []Process
}

// TCPInfo is the part of struct tcp_info that answers "is this connection
// healthy": round trip, retransmissions, volume and idle time.
type TCPInfo struct {
	RTT, RTTVar time.Duration
	Retransmits uint8 // consecutive retransmits of the current segment
	// Retrans is tcpi_retrans: retransmitted segments not acknowledged yet
	// (ss -i's X in retrans:X/Y, Y being TotalRetrans).
	Retrans        uint32
	TotalRetrans   uint32 // retransmitted segments over the connection's life
	Lost           uint32
	BytesAcked     uint64 // bytes the peer acknowledged (sent by us)
	BytesReceived  uint64
	BytesSent      uint64        // 4.19+; 0 on older kernels
	LastDataSent   time.Duration // how long ago
	LastDataRecv   time.Duration
	LastAckRecv    time.Duration
	SndCwnd        uint32
	SndMSS, RcvMSS uint32
}

// MemInfo is INET_DIAG_SKMEMINFO (ss -m).
type MemInfo struct {
	RmemAlloc, RcvBuf, WmemAlloc, SndBuf, FwdAlloc, WmemQueued, OptMem, Backlog, Drops uint32
}

// TimerKind is the TCP timer pending on a socket, as idiag_timer numbers it.
type TimerKind uint8

const (
	TimerNone TimerKind = iota
	TimerRetransmit
	TimerKeepalive
	TimerTimeWait
	TimerZeroWindowProbe
)

// Timer is the pending TCP timer and when it fires.
type Timer struct {
	Kind        TimerKind
	Expires     time.Duration
	Retransmits uint8
}

// Process is one holder of a socket's file descriptor.
type Process struct {
	PID  int32
	Comm string
	FD   int32
}
