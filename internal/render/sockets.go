package render

// sockets.go: snapshot sockets the way ss(8) users read them: the
// same columns, address notation and users:(...) process column, and as
// JSON with snake_case keys.
//
//	Netid  State   Recv-Q  Send-Q  Local Address:Port  Peer Address:Port  Process
//	tcp    LISTEN       0    4096  0.0.0.0:22          0.0.0.0:*          users:(("sshd",pid=612,fd=3))
//	tcp    ESTAB        0       0  10.0.2.15:22        10.0.2.2:50512     users:(("sshd",pid=9120,fd=4))

import (
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/socklife/socklife/snapshot"
	"golang.org/x/sys/unix"
)

// TableOptions chooses the optional columns.
type TableOptions struct {
	Netns     bool // a Netns column, for --all-netns
	Processes bool // the Process column, when owners were looked up
	Info      bool // rtt and retransmits, bytes, from tcp_info
	// Resolve, when set, names hosts and ports (snapshot -r, ss -r).
	Resolve *Resolver
}

// WriteTable writes socks as an aligned table.
func WriteSockets(w io.Writer, socks []snapshot.Socket, opts TableOptions, names *Names) error {
	cols := []Column{
		{Title: "Netid"}, {Title: "State"},
		{Title: "Recv-Q", Right: true}, {Title: "Send-Q", Right: true},
		{Title: "Local Address:Port"}, {Title: "Peer Address:Port"},
	}
	if opts.Netns {
		cols = append(cols, Column{Title: "Netns", Right: true})
	}
	if opts.Info {
		cols = append(cols,
			Column{Title: "RTT(ms)", Right: true}, Column{Title: "Retrans", Right: true},
			Column{Title: "Acked", Right: true}, Column{Title: "Rcvd", Right: true})
	}
	containers := anyContainer(len(socks), func(i int) bool { _, ok := names.SocketContainer(&socks[i]); return ok })
	cols = ownerColumns(cols, containers, opts.Processes)
	return WriteTable(w, cols, len(socks), func(i int, buf []byte, ends []int) ([]byte, []int) {
		s := &socks[i]
		cell := func() { ends = append(ends, len(buf)) }
		buf = append(buf, Netid(s)...)
		cell()
		buf = append(buf, s.State.String()...)
		cell()
		buf = strconv.AppendUint(buf, uint64(s.RecvQ), 10)
		cell()
		buf = strconv.AppendUint(buf, uint64(s.SendQ), 10)
		cell()
		if s.Protocol == snapshot.Unix {
			buf = appendUnixLocal(buf, s)
			cell()
			buf = appendUnixPeer(buf, s)
			cell()
		} else {
			buf = appendSocketAddr(buf, s, s.Local, names.In(s.Netns, s.Interface), opts.Resolve)
			cell()
			buf = appendSocketAddr(buf, s, s.Remote, "", opts.Resolve)
			cell()
		}
		if opts.Netns {
			buf = appendNetnsCell(buf, names, s.Netns)
			cell()
		}
		if opts.Info {
			buf = appendInfo(buf, s.TCPInfo, &ends)
		}
		buf = appendOwnerCells(buf, &ends, s, names, containers, opts.Processes)
		return buf, ends
	})
}

// ownerColumns ends a socket table: Container and Pod when a row is in a
// container, Process when owners were looked up.
func ownerColumns(cols []Column, containers, processes bool) []Column {
	if containers {
		cols = append(cols, Column{Title: "Container"}, Column{Title: "Pod"})
	}
	if processes {
		cols = append(cols, Column{Title: "Process"})
	}
	return cols
}

// appendOwnerCells appends the cells of ownerColumns for s.
func appendOwnerCells(buf []byte, ends *[]int, s *snapshot.Socket, names *Names, containers, processes bool) []byte {
	if containers {
		c, ok := names.SocketContainer(s)
		buf = appendContainerCells(buf, ends, c, ok)
	}
	if processes {
		buf = AppendUsers(buf, s.Processes)
		*ends = append(*ends, len(buf))
	}
	return buf
}

func appendInfo(buf []byte, ti *snapshot.TCPInfo, ends *[]int) []byte {
	if ti == nil {
		for range 4 {
			buf = append(buf, '-')
			*ends = append(*ends, len(buf))
		}
		return buf
	}
	buf = strconv.AppendFloat(buf, float64(ti.RTT.Microseconds())/1000, 'f', 3, 64)
	*ends = append(*ends, len(buf))
	// ss -i's retrans:X/Y: unacknowledged retransmitted segments now, and
	// over the connection's life (ss prints it only when Y is not 0).
	buf = strconv.AppendUint(buf, uint64(ti.Retrans), 10)
	buf = append(buf, '/')
	buf = strconv.AppendUint(buf, uint64(ti.TotalRetrans), 10)
	*ends = append(*ends, len(buf))
	buf = strconv.AppendUint(buf, ti.BytesAcked, 10)
	*ends = append(*ends, len(buf))
	buf = strconv.AppendUint(buf, ti.BytesReceived, 10)
	*ends = append(*ends, len(buf))
	return buf
}

// Netid is the Netid column: tcp, udp, or u_str/u_dgr/u_seq for Unix sockets.
func Netid(s *snapshot.Socket) string {
	if s.Protocol != snapshot.Unix {
		return s.Protocol.String()
	}
	switch s.UnixType {
	case unix.SOCK_STREAM:
		return "u_str"
	case unix.SOCK_DGRAM:
		return "u_dgr"
	case unix.SOCK_SEQPACKET:
		return "u_seq"
	}
	return "unix"
}

// AppendAddrPort appends ap as ss -n prints it: 10.0.0.1:80, [::1]:80,
// 127.0.0.53%lo:53 for a socket bound to a device, and * for port 0.
func AppendAddrPort(buf []byte, ap netip.AddrPort, ifname string) []byte {
	a := ap.Addr()
	switch {
	case !a.IsValid():
		buf = append(buf, '*')
	case a.Is4():
		buf = a.AppendTo(buf)
	default:
		buf = append(buf, '[')
		buf = a.WithZone("").AppendTo(buf)
		buf = append(buf, ']')
	}
	if ifname != "" {
		buf = append(buf, '%')
		buf = appendTerm(buf, ifname)
	}
	buf = append(buf, ':')
	if ap.Port() == 0 {
		return append(buf, '*')
	}
	return strconv.AppendUint(buf, uint64(ap.Port()), 10)
}

// DualStack reports an IPv6 socket that also takes IPv4 (IPV6_V6ONLY off):
// bound to [::], it hears both families. The kernel reports v6only for
// full sockets only, not for TIME-WAIT and SYN-RECV minisocks, but those
// are never bound to [::].
func DualStack(s *snapshot.Socket) bool {
	return s.Family == unix.AF_INET6 && !s.V6Only && s.Protocol != snapshot.Unix
}

// appendSocketAddr is AppendAddrPort for one of s's addresses, with ss's
// one exception: a dual-stack socket's [::] prints as * (ss's "*:8080" for
// a listener that takes IPv4 and IPv6, "[::]:8080" for an IPv6-only one).
func appendSocketAddr(buf []byte, s *snapshot.Socket, ap netip.AddrPort, ifname string, r *Resolver) []byte {
	if a := ap.Addr(); a.Is6() && a.IsUnspecified() && DualStack(s) {
		ap = netip.AddrPortFrom(netip.Addr{}, ap.Port())
	}
	if r != nil {
		return r.appendResolved(buf, ap, ifname, s.Protocol.String())
	}
	return AppendAddrPort(buf, ap, ifname)
}

// Unix sockets fill the address columns as ss -x does: the bound path (or *)
// and the inode, then * and the peer's inode.
func appendUnixLocal(buf []byte, s *snapshot.Socket) []byte {
	switch {
	case s.Path == "":
		buf = append(buf, '*')
	case s.Path[0] == '@':
		// An abstract name is raw bytes: ss prints each NUL in it as
		// "@", as it prints the leading one; the rest is escaped.
		for _, part := range strings.SplitAfter(s.Path, "\x00") {
			if strings.HasSuffix(part, "\x00") {
				buf = append(appendTerm(buf, part[:len(part)-1]), '@')
			} else {
				buf = appendTerm(buf, part)
			}
		}
	default:
		buf = appendTerm(buf, s.Path)
	}
	buf = append(buf, ' ')
	return strconv.AppendUint(buf, s.Inode, 10)
}

func appendUnixPeer(buf []byte, s *snapshot.Socket) []byte {
	buf = append(buf, '*', ' ')
	return strconv.AppendUint(buf, s.PeerInode, 10)
}

// AppendUsers appends the process column as ss -p prints it:
// users:(("nginx",pid=10,fd=6),("nginx",pid=11,fd=6)), or nothing.
func AppendUsers(buf []byte, procs []snapshot.Process) []byte {
	if len(procs) == 0 {
		return buf
	}
	buf = append(buf, "users:("...)
	for i, p := range procs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, "(\""...)
		buf = appendTerm(buf, p.Comm)
		buf = append(buf, "\",pid="...)
		buf = strconv.AppendInt(buf, int64(p.PID), 10)
		buf = append(buf, ",fd="...)
		buf = strconv.AppendInt(buf, int64(p.FD), 10)
		buf = append(buf, ')')
	}
	return append(buf, ')')
}
