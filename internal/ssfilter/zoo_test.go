package ssfilter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// This file builds a zoo of real TCP sockets and reads them back through
// NETLINK_SOCK_DIAG, for the tests that compare with the kernel and ss.

// zoo is a set of sockets on ports of our own.
type zoo struct {
	base  int          // first port; the zoo uses base..base+zooPorts-1
	fds   []int        // to close at the end
	ports map[int]bool // every port we bound
}

const zooPorts = 16

var zoos int // zoos built by this process

func (z *zoo) port(i int) int { return z.base + i }

// inZoo says whether a socket is one of ours: other processes' sockets
// (and their churn) are left out of every comparison.
func (z *zoo) inZoo(local, remote netip.AddrPort) bool {
	return z.ports[int(local.Port())] || z.ports[int(remote.Port())]
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (sock_diag marks, SO_MARK, SO_BINDTODEVICE)")
	}
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func (z *zoo) socket(t *testing.T, fam int, setup func(fd int) error) int {
	t.Helper()
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	z.fds = append(z.fds, fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		if err := setup(fd); err != nil {
			t.Fatal(err)
		}
	}
	return fd
}

func (z *zoo) listen(t *testing.T, fam int, at netip.AddrPort, setup func(fd int) error) int {
	t.Helper()
	fd := z.socket(t, fam, setup)
	if err := unix.Bind(fd, sockaddr(at)); err != nil {
		t.Fatalf("bind %v: %v", at, err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	z.ports[int(at.Port())] = true
	return fd
}

// connect makes a client (bound to from unless it is invalid: then the
// kernel picks the port, and the socket is autobound) and accepts it.
// Loopback connects complete in the kernel before accept, so no waiting.
func (z *zoo) connect(t *testing.T, fam int, from, to netip.AddrPort, lfd int, setup func(fd int) error) (client, server int) {
	t.Helper()
	client = z.socket(t, fam, setup)
	if from.IsValid() {
		if err := unix.Bind(client, sockaddr(from)); err != nil {
			t.Fatalf("bind %v: %v", from, err)
		}
		z.ports[int(from.Port())] = true
	}
	if err := unix.Connect(client, sockaddr(to)); err != nil {
		t.Fatalf("connect %v: %v", to, err)
	}
	server, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	z.fds = append(z.fds, server)
	return client, server
}

func (z *zoo) close() {
	for _, fd := range z.fds {
		unix.Close(fd)
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// newZoo builds: listeners on 127.0.0.1, 127.0.0.2, [::1] (v6only), [::]
// (dual stack), 0.0.0.0 with a mark and 127.0.0.1 bound to lo;
// established pairs over v4, v6 and v4-mapped v6 (from a v4 client, and
// from a v6 client dialling ::ffff:127.0.0.1), some clients on ports we
// chose and some autobound; a FIN_WAIT2/CLOSE_WAIT pair; and a TIME_WAIT.
func newZoo(t *testing.T) *zoo {
	t.Helper()
	// A base port per process and zoo, below the ephemeral range, so a
	// rerun does not meet the previous zoo's TIME_WAIT or closing sockets.
	zoos++
	z := &zoo{base: 10000 + (os.Getpid()+zoos*97)%1000*zooPorts, ports: map[int]bool{}}
	t.Cleanup(z.close)
	p := func(ip string, i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(z.port(i)))
	}
	v6only := func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1) }
	dual := func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0) }
	mark := func(m int) func(int) error {
		return func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, m) }
	}
	toLo := func(fd int) error { return unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "lo") }

	l0 := z.listen(t, unix.AF_INET, p("127.0.0.1", 0), nil)
	l1 := z.listen(t, unix.AF_INET, p("127.0.0.2", 1), nil)
	l2 := z.listen(t, unix.AF_INET6, p("::1", 2), v6only)
	l3 := z.listen(t, unix.AF_INET6, p("::", 3), dual)
	l4 := z.listen(t, unix.AF_INET, p("0.0.0.0", 4), mark(0x15))
	l5 := z.listen(t, unix.AF_INET, p("127.0.0.1", 5), toLo)
	_ = l5

	none := netip.AddrPort{}
	z.connect(t, unix.AF_INET, none, p("127.0.0.1", 0), l0, nil)
	z.connect(t, unix.AF_INET, p("127.0.0.3", 6), p("127.0.0.2", 1), l1, mark(0x7))
	z.connect(t, unix.AF_INET6, p("::1", 7), p("::1", 2), l2, nil)
	z.connect(t, unix.AF_INET6, none, p("::1", 2), l2, nil)
	z.connect(t, unix.AF_INET, p("127.0.0.1", 8), p("127.0.0.1", 3), l3, nil) // server side v4-mapped
	z.connect(t, unix.AF_INET6, none, p("::ffff:127.0.0.1", 3), l3, dual)     // both sides v4-mapped
	z.connect(t, unix.AF_INET, p("127.0.0.4", 9), p("127.0.0.5", 4), l4, nil)

	// FIN_WAIT2 (client) and CLOSE_WAIT (server): the client shuts its
	// writing side and keeps its descriptor, so both stay put.
	c, _ := z.connect(t, unix.AF_INET, p("127.0.0.1", 10), p("127.0.0.1", 0), l0, nil)
	if err := unix.Shutdown(c, unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	// TIME_WAIT: the client closes first, then the server.
	c, s := z.connect(t, unix.AF_INET, p("127.0.0.1", 11), p("127.0.0.2", 1), l1, nil)
	unix.Close(c)
	unix.Close(s)

	// Wait for the kernel to finish the closing handshakes (loopback:
	// microseconds) by looking, not by sleeping a guess.
	want := map[string]uint8{
		fmt.Sprintf("%d>%d", z.port(10), z.port(0)): StateFinWait2,
		fmt.Sprintf("%d>%d", z.port(0), z.port(10)): StateCloseWait,
		fmt.Sprintf("%d>%d", z.port(11), z.port(1)): StateTimeWait,
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		socks, err := diagDump(nil)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, s := range socks {
			if st, ok := want[fmt.Sprintf("%d>%d", s.Local.Port(), s.Remote.Port())]; ok && s.State == st {
				got++
			}
		}
		if got == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("zoo: closing sockets did not reach FIN_WAIT2/CLOSE_WAIT/TIME_WAIT")
		}
		time.Sleep(time.Millisecond)
	}
	return z
}

// sockets is the zoo as the kernel reports it, with the kernel's own
// autobound bit (asked with an "autobound" program, since inet_diag does
// not report userlocks).
func (z *zoo) sockets(t *testing.T) []Sock {
	t.Helper()
	all, err := diagDump(nil)
	if err != nil {
		t.Fatal(err)
	}
	auto, err := diagDump([]byte{bcAuto, 4, 8, 0})
	if err != nil {
		t.Fatal(err)
	}
	isAuto := map[string]bool{}
	for _, s := range auto {
		isAuto[sockKey(&s)] = true
	}
	var out []Sock
	for _, s := range all {
		if z.inZoo(s.Local, s.Remote) {
			s.Autobound = isAuto[sockKey(&s)]
			out = append(out, s)
		}
	}
	return out
}

// sockKey names a socket as ss prints it: addresses, ports and state.
func sockKey(s *Sock) string {
	return fmt.Sprintf("%v %v %d", s.Local, s.Remote, s.State)
}

// diagDump dumps every TCP socket of both families, through the program
// bc if it is not nil.
func diagDump(bc []byte) ([]Sock, error) {
	var out []Sock
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		socks, err := diagDumpFamily(fam, bc)
		if err != nil {
			return nil, err
		}
		out = append(out, socks...)
	}
	return out, nil
}

const (
	inetDiagMark     = 15 // INET_DIAG_MARK
	inetDiagCgroupID = 21 // INET_DIAG_CGROUP_ID
)

func diagDumpFamily(fam uint8, bc []byte) ([]Sock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	ne := binary.NativeEndian
	// struct inet_diag_req_v2: family, protocol, ext, pad, states, then a
	// zero inet_diag_sockid (48 bytes).
	req := make([]byte, 16+56)
	req[16] = fam
	req[17] = unix.IPPROTO_TCP
	ne.PutUint32(req[20:], 0xffffffff)
	if bc != nil {
		attr := make([]byte, 4+len(bc))
		ne.PutUint16(attr, uint16(len(attr)))
		ne.PutUint16(attr[2:], AttrBytecode)
		copy(attr[4:], bc)
		for len(attr)%4 != 0 {
			attr = append(attr, 0)
		}
		req = append(req, attr...)
	}
	ne.PutUint32(req, uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], 1)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var out []Sock
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(ne.Uint32(m.Data)); e != 0 {
						return nil, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
					}
				}
				return nil, errors.New("sock_diag: error")
			}
			s, err := parseDiagMsg(m.Data)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
}

// parseDiagMsg reads struct inet_diag_msg (72 bytes) and its attributes.
func parseDiagMsg(b []byte) (Sock, error) {
	if len(b) < 72 {
		return Sock{}, errors.New("short inet_diag_msg")
	}
	ne := binary.NativeEndian
	s := Sock{Family: b[0], State: b[1]}
	sport, dport := binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:])
	addr := func(a []byte) netip.Addr {
		if s.Family == unix.AF_INET {
			return netip.AddrFrom4([4]byte(a[:4]))
		}
		return netip.AddrFrom16([16]byte(a[:16]))
	}
	s.Local = netip.AddrPortFrom(addr(b[8:24]), sport)
	s.Remote = netip.AddrPortFrom(addr(b[24:40]), dport)
	s.Ifindex = ne.Uint32(b[40:])
	for a := b[72:]; len(a) >= 4; {
		l := int(ne.Uint16(a))
		if l < 4 || l > len(a) {
			break
		}
		typ, v := ne.Uint16(a[2:])&0x3fff, a[4:l]
		switch {
		case typ == inetDiagMark && len(v) >= 4:
			s.Mark = ne.Uint32(v)
		case typ == inetDiagCgroupID && len(v) >= 8:
			s.CgroupID = ne.Uint64(v)
		}
		a = a[min((l+3)&^3, len(a)):]
	}
	return s, nil
}

// ssStates maps ss's state column to kernel numbers.
var ssStates = map[string]uint8{
	"ESTAB": StateEstablished, "SYN-SENT": StateSynSent, "SYN-RECV": StateSynRecv,
	"FIN-WAIT-1": StateFinWait1, "FIN-WAIT-2": StateFinWait2, "TIME-WAIT": StateTimeWait,
	"UNCONN": StateClose, "CLOSE-WAIT": StateCloseWait, "LAST-ACK": StateLastAck,
	"LISTEN": StateListen, "CLOSING": StateClosing,
}

// parseSSAddr reads ss -n's "ADDR[%DEV]:PORT", where ADDR is a dotted
// quad, "[v6]" or "*" (an IPv6 wildcard), and PORT may be "*" (0).
func parseSSAddr(s string) (netip.AddrPort, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("no port in %q", s)
	}
	host, port := s[:i], s[i+1:]
	if j := strings.IndexByte(host, '%'); j >= 0 {
		host = host[:j]
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "*" {
		host = "::"
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	n := 0
	if port != "*" {
		if n, err = strconv.Atoi(port); err != nil {
			return netip.AddrPort{}, err
		}
	}
	return netip.AddrPortFrom(a, uint16(n)), nil
}

// runSS runs ss -H flags args (no shell) and returns the zoo sockets
// it printed, as sockKeys, sorted; ok is false when ss refused the args.
// oneState is the state to assume when ss drops its State column (it
// does when the mask has a single state).
func (z *zoo) runSS(t *testing.T, flags string, args []string, oneState uint8) (keys []string, ok bool, stderr string) {
	t.Helper()
	cmd := exec.Command("ss", append([]string{"-H", flags}, args...)...)
	var serr strings.Builder
	cmd.Stderr = &serr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, false, serr.String()
		}
		t.Fatalf("ss: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		local, err1 := parseSSAddr(f[len(f)-2])
		peer, err2 := parseSSAddr(f[len(f)-1])
		if err1 != nil || err2 != nil {
			t.Fatalf("ss line %q: %v %v", line, err1, err2)
		}
		if !z.inZoo(local, peer) {
			continue
		}
		st := oneState
		if len(f) == 5 {
			var known bool
			if st, known = ssStates[f[0]]; !known {
				t.Fatalf("ss line %q: state %q", line, f[0])
			}
		}
		keys = append(keys, fmt.Sprintf("%v %v %d", local, peer, st))
	}
	slices.Sort(keys)
	return keys, true, serr.String()
}

// keysOf lists the sockets in socks that keep says to keep.
func keysOf(socks []Sock, keep func(*Sock) bool) []string {
	var keys []string
	for i := range socks {
		if keep(&socks[i]) {
			keys = append(keys, sockKey(&socks[i]))
		}
	}
	slices.Sort(keys)
	return keys
}
