package ssfilter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// This file reads testutil's socket zoo (testutil.NewSSZoo: real TCP
// sockets on ports of the test's own) back through NETLINK_SOCK_DIAG, for
// the tests that compare with the kernel and ss.

// newZoo builds a zoo on ports 10000-25999, below the ephemeral range and
// cmd/socklife's zoo, whose test may run at the same time.
func newZoo(t *testing.T) *testutil.SSZoo {
	t.Helper()
	return testutil.NewSSZoo(t, 10000, 26000)
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// sockets is the zoo as the kernel reports it, with the kernel's own
// autobound bit (asked with an "autobound" program, since inet_diag does
// not report userlocks).
func zooSockets(t *testing.T, z *testutil.SSZoo) []Sock {
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
		if z.Mine(s.Local, s.Remote) {
			s.Autobound = isAuto[sockKey(&s)]
			out = append(out, s)
		}
	}
	return out
}

// sockKey names a socket as testutil's zoo does (testutil.SSKey).
func sockKey(s *Sock) string {
	return testutil.SSKey(s.Local, s.Remote, tcpstate.State(s.State))
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
