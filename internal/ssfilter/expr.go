package ssfilter

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"
)

// Sock is what a filter looks at in a socket.
type Sock struct {
	Family uint8 // unix.AF_INET, AF_INET6 (also for v4-mapped), AF_UNIX
	State  uint8 // kernel TCP_* numbering, 1=ESTABLISHED .. 12=NEW_SYN_RECV
	// Local and Remote are the inet addresses; for AF_INET the addresses
	// may be plain or 4in6, for AF_INET6 they are taken as 16 bytes.
	Local, Remote netip.AddrPort
	Ifindex       uint32 // bound device (inet_diag id.idiag_if)
	Mark          uint32 // SO_MARK (INET_DIAG_MARK)
	CgroupID      uint64 // INET_DIAG_CGROUP_ID
	// Autobound is the kernel's notion: the local port was not bound by
	// the user (no SOCK_BINDPORT_LOCK); the kernel says true for
	// TIME_WAIT and SYN_RECV minisockets. ss also tests the port against
	// the ephemeral range itself, and shows only what passes both.
	Autobound bool
	// AF_UNIX: the bound name as ss prints it (abstract names with a
	// leading '@'), "" for none; and the inode numbers, which ss uses as
	// the local and remote "ports" of a unix socket.
	UnixPath     string
	Ino, PeerIno uint32
}

type exprOp uint8

const (
	opAnd exprOp = iota
	opOr
	opNot
	opSCond // src HOST, sport = PORT
	opDCond // dst HOST, dport = PORT
	opSGE   // sport >= PORT
	opSLE
	opDGE
	opDLE
	opDev
	opMark
	opCgroup
	opAuto
)

// Expr is a parsed ss expression, shaped as ss's own tree: a > b is
// kept as not (a <= b), != as not =.
type Expr struct {
	op      exprOp
	a, b    *Expr
	host    *hostCond // conditions and port comparisons
	ifindex uint32
	mark    uint32
	mask    uint32
	cgroup  uint64
	eph     [2]int // autobound: ephemeral port range, inclusive

	// The root's program, compiled once by Parse for Match.
	prog     []byte
	progOK   bool
	compiled bool
}

// SocketOnly names the first condition of e that needs a socket's own
// facts, which a dump has and a traced event does not: "dev", "fwmark",
// "cgroup" or "autobound"; "" when e tests only families, addresses and
// ports.
func (e *Expr) SocketOnly() string {
	if e == nil {
		return ""
	}
	switch e.op {
	case opDev:
		return "dev"
	case opMark:
		return "fwmark"
	case opCgroup:
		return "cgroup"
	case opAuto:
		return "autobound"
	}
	if w := e.a.SocketOnly(); w != "" {
		return w
	}
	return e.b.SocketOnly()
}

// Match reports whether ss would show s given this expression: ss sends
// the expression to the kernel as bytecode and tests each socket the
// kernel returns again in user space, and the two tests differ in corner
// cases (an IPv4 prefix against a pure IPv6 address, out-of-range ports,
// autobound), so for inet sockets Match is both tests when ss would use
// bytecode (see Bytecode), else the user-space test alone. A nil Expr
// matches everything.
func (e *Expr) Match(s *Sock) bool {
	if e == nil {
		return true
	}
	if !e.user(s) {
		return false
	}
	if s.Family == unix.AF_INET || s.Family == unix.AF_INET6 {
		bc, ok := e.prog, e.progOK
		if !e.compiled {
			bc, ok = e.Bytecode()
		}
		if ok {
			return RunBytecode(bc, s)
		}
	}
	return true
}

// MatchUserSpace is the test ss runs in user space on the sockets a dump
// returns (run_ssfilter), without the kernel's: a caller that sent
// Bytecode with the dump has had the kernel's test run already, on facts
// a dump does not report (the kernel's autobound, a mark hidden from
// users without CAP_NET_ADMIN), and must not run it again on its copy.
// Kernel bytecode then MatchUserSpace is what Match computes, as ss
// prints it. A nil Expr matches everything.
func (e *Expr) MatchUserSpace(s *Sock) bool {
	return e == nil || e.user(s)
}

// user is ss's run_ssfilter.
func (e *Expr) user(s *Sock) bool {
	lport, rport := int(s.Local.Port()), int(s.Remote.Port())
	if s.Family == unix.AF_UNIX {
		lport, rport = int(s.Ino), int(s.PeerIno)
	}
	switch e.op {
	case opAnd:
		return e.a.user(s) && e.b.user(s)
	case opOr:
		return e.a.user(s) || e.b.user(s)
	case opNot:
		return !e.a.user(s)
	case opAuto:
		if s.Family == unix.AF_UNIX {
			p := s.UnixPath
			return p == "" || (len(p) == 6 && p[0] == '@' && strings.Trim(p[1:], "0123456789abcdef") == "")
		}
		return lport >= e.eph[0] && lport <= e.eph[1]
	case opSCond:
		return e.host.userMatch(s, s.Local, lport, s.UnixPath)
	case opDCond:
		// ss never has a peer name for a unix socket: "" stands in.
		return e.host.userMatch(s, s.Remote, rport, "")
	case opSGE:
		return lport >= e.host.port
	case opSLE:
		return lport <= e.host.port
	case opDGE:
		return rport >= e.host.port
	case opDLE:
		return rport <= e.host.port
	case opDev:
		return s.Ifindex == e.ifindex
	case opMark:
		return s.Mark&e.mask == e.mark
	case opCgroup:
		return s.CgroupID == e.cgroup
	}
	panic("ssfilter: bad op")
}

// userMatch is ss's user-space host test. Unlike the kernel's, it does
// not compare families: it compares the prefix bits with the socket's
// address bytes (an IPv4 socket's padded with zeros), then lets an IPv4
// prefix also match the v4 part of a v4-mapped address.
func (h *hostCond) userMatch(s *Sock, ap netip.AddrPort, port int, path string) bool {
	if h.family == unix.AF_UNIX {
		// ss would read an inet address as a name pointer; such sockets
		// are hidden by the unix: family anyway (Filter.Family).
		return s.Family == unix.AF_UNIX && fnmatch(h.pattern, path)
	}
	if h.port != -1 && h.port != port {
		return false
	}
	if h.bits == 0 {
		return true
	}
	if s.Family == unix.AF_UNIX {
		return false // ss would compare the bytes of a pointer
	}
	a := sockAddr(s.Family, ap.Addr())
	if bitsMatch(a[:], h.addr[:], h.bits) {
		return true
	}
	if h.family == unix.AF_INET && s.Family == unix.AF_INET6 && isMapped(a) {
		return bitsMatch(a[12:], h.addr[:], h.bits)
	}
	return false
}

// sockAddr lays an address out as inet_diag does: 4 bytes for AF_INET
// (zero padded here), 16 for AF_INET6.
func sockAddr(fam uint8, a netip.Addr) [16]byte {
	var b [16]byte
	if !a.IsValid() {
		return b
	}
	if fam == unix.AF_INET {
		v4 := a.Unmap().As4()
		copy(b[:], v4[:])
		return b
	}
	return a.As16()
}

func isMapped(a [16]byte) bool {
	return a[0]|a[1]|a[2]|a[3]|a[4]|a[5]|a[6]|a[7]|a[8]|a[9] == 0 && a[10] == 0xff && a[11] == 0xff
}

// bitsMatch compares the first n bits of a and b.
func bitsMatch(a, b []byte, n int) bool {
	i := 0
	for ; n >= 8; n -= 8 {
		if a[i] != b[i] {
			return false
		}
		i++
	}
	if n > 0 {
		m := byte(0xff << (8 - n))
		return (a[i]^b[i])&m == 0
	}
	return true
}

func (e *Expr) hasAuto() bool {
	if e == nil {
		return false
	}
	return e.op == opAuto || e.a.hasAuto() || e.b.hasAuto()
}

func (e *Expr) setEphemeral(r [2]int) {
	if e == nil {
		return
	}
	e.eph = r
	e.a.setEphemeral(r)
	e.b.setEphemeral(r)
}

// String writes the expression back, fully parenthesized, in ss syntax.
func (e *Expr) String() string {
	if e == nil {
		return ""
	}
	switch e.op {
	case opAnd:
		return "( " + e.a.String() + " and " + e.b.String() + " )"
	case opOr:
		return "( " + e.a.String() + " or " + e.b.String() + " )"
	case opNot:
		return "not " + e.a.String()
	case opAuto:
		return "autobound"
	case opSCond:
		return "src " + e.host.String()
	case opDCond:
		return "dst " + e.host.String()
	case opSGE:
		return fmt.Sprintf("sport >= %s", e.host)
	case opSLE:
		return fmt.Sprintf("sport <= %s", e.host)
	case opDGE:
		return fmt.Sprintf("dport >= %s", e.host)
	case opDLE:
		return fmt.Sprintf("dport <= %s", e.host)
	case opDev:
		return fmt.Sprintf("dev %d", e.ifindex)
	case opMark:
		return fmt.Sprintf("fwmark 0x%x/0x%x", e.mark, e.mask)
	case opCgroup:
		return fmt.Sprintf("cgroup id:%d", e.cgroup)
	}
	return "?"
}

func (h *hostCond) String() string {
	if h.family == unix.AF_UNIX {
		return "unix:" + h.pattern
	}
	a := "*"
	switch {
	case h.family == unix.AF_INET && h.bits > 0:
		a = fmt.Sprintf("%s/%d", netip.AddrFrom4([4]byte(h.addr[:4])), h.bits)
	case h.family == unix.AF_INET6 && h.bits > 0:
		a = fmt.Sprintf("[%s/%d]", netip.AddrFrom16(h.addr), h.bits)
	}
	if h.port == -1 {
		return a
	}
	return fmt.Sprintf("%s:%d", a, h.port)
}
