package testutil

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
)

// This file is the "socket zoo" the differential tests against ss(8) share:
// real TCP sockets on ports of the test's own, the real ss run over them,
// and a grammar of ss filter expressions over the zoo's ports and addresses.
// internal/ssfilter compares its parser, matcher and bytecode with ss over
// it; cmd/socklife compares `socklife snapshot FILTER` with ss.

// SSZooPorts is how many ports a zoo uses: Port(0) to Port(SSZooPorts-1).
const SSZooPorts = 16

// SSZooSockets is how many sockets a zoo has (ss -tan lists them all).
const SSZooSockets = 23

// SSZoo is a set of TCP sockets on ports base..base+SSZooPorts-1. NewSSZoo
// builds it: see there for what is in it.
type SSZoo struct {
	base  int
	fds   []int        // to close at the end
	ports map[int]bool // every port the zoo bound
}

var sszoos atomic.Int64 // zoos built by this process

// Port is the zoo's i-th port (0 <= i < SSZooPorts).
func (z *SSZoo) Port(i int) int { return z.base + i }

// Mine says whether a socket is one of the zoo's: comparisons leave the rest
// of the host's sockets (and their churn) out.
func (z *SSZoo) Mine(local, remote netip.AddrPort) bool {
	return z.ports[int(local.Port())] || z.ports[int(remote.Port())]
}

// NewSSZoo builds a zoo on ports in [lo, hi) (below the ephemeral range, and
// apart from any other package's zoo whose test may run at the same time),
// chosen by process and zoo so that a rerun does not meet the previous run's
// TIME_WAIT or closing sockets. Port(i) is the zoo's i-th port. It holds:
//
//   - listeners on 127.0.0.1:Port(0), 127.0.0.2:Port(1), [::1]:Port(2)
//     (v6only), [::]:Port(3) (dual stack), 0.0.0.0:Port(4) (fwmark 0x15)
//     and 127.0.0.1:Port(5) (bound to the device lo);
//   - established pairs (client and accepted side): an autobound v4 client
//     to Port(0); 127.0.0.3:Port(6) (fwmark 0x7) to Port(1); [::1]:Port(7)
//     and an autobound v6 client to Port(2); the v4 client
//     127.0.0.1:Port(8) to the dual-stack Port(3) (v4-mapped on the server
//     side); an autobound dual-stack v6 client to [::ffff:127.0.0.1]:Port(3)
//     (v4-mapped on both sides); 127.0.0.4:Port(9) to 127.0.0.5:Port(4);
//   - a FIN_WAIT2 client 127.0.0.1:Port(10) and its CLOSE_WAIT server side
//     on Port(0);
//   - a TIME_WAIT socket 127.0.0.1:Port(11) to 127.0.0.2:Port(1).
//
// SSZooSockets sockets in all. It returns when ss shows the closing sockets settled.
// Making them needs root (SO_MARK, SO_BINDTODEVICE); the sockets close at
// the end of the test.
func NewSSZoo(tb testing.TB, lo, hi int) *SSZoo {
	tb.Helper()
	n := int(sszoos.Add(1))
	z := &SSZoo{base: lo + (os.Getpid()+n*97)%((hi-lo)/SSZooPorts)*SSZooPorts, ports: map[int]bool{}}
	tb.Cleanup(func() {
		for _, fd := range z.fds {
			unix.Close(fd)
		}
	})
	p := func(ip string, i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(z.Port(i)))
	}
	v6only := func(on int) func(int) error {
		return func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, on) }
	}
	mark := func(m int) func(int) error {
		return func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, m) }
	}
	toLo := func(fd int) error { return unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "lo") }

	l0 := z.listen(tb, unix.AF_INET, p("127.0.0.1", 0))
	l1 := z.listen(tb, unix.AF_INET, p("127.0.0.2", 1))
	l2 := z.listen(tb, unix.AF_INET6, p("::1", 2), v6only(1))
	l3 := z.listen(tb, unix.AF_INET6, p("::", 3), v6only(0))
	l4 := z.listen(tb, unix.AF_INET, p("0.0.0.0", 4), mark(0x15))
	z.listen(tb, unix.AF_INET, p("127.0.0.1", 5), toLo)

	none := netip.AddrPort{}
	z.connect(tb, unix.AF_INET, none, p("127.0.0.1", 0), l0)
	z.connect(tb, unix.AF_INET, p("127.0.0.3", 6), p("127.0.0.2", 1), l1, mark(0x7))
	z.connect(tb, unix.AF_INET6, p("::1", 7), p("::1", 2), l2)
	z.connect(tb, unix.AF_INET6, none, p("::1", 2), l2)
	z.connect(tb, unix.AF_INET, p("127.0.0.1", 8), p("127.0.0.1", 3), l3)       // v4-mapped server side
	z.connect(tb, unix.AF_INET6, none, p("::ffff:127.0.0.1", 3), l3, v6only(0)) // v4-mapped both sides
	z.connect(tb, unix.AF_INET, p("127.0.0.4", 9), p("127.0.0.5", 4), l4)

	// FIN_WAIT2 (client) and CLOSE_WAIT (server): the client shuts its
	// writing side and keeps its descriptor, so both stay put.
	c, _ := z.connect(tb, unix.AF_INET, p("127.0.0.1", 10), p("127.0.0.1", 0), l0)
	if err := unix.Shutdown(c, unix.SHUT_WR); err != nil {
		tb.Fatal(err)
	}
	// TIME_WAIT: the client closes first, then the server.
	c, s := z.connect(tb, unix.AF_INET, p("127.0.0.1", 11), p("127.0.0.2", 1), l1)
	unix.Close(c)
	unix.Close(s)

	// The closing handshakes take microseconds on loopback: look until
	// they are done rather than sleep a guess.
	want := []string{
		SSKey(p("127.0.0.1", 10), p("127.0.0.1", 0), tcpstate.FinWait2),
		SSKey(p("127.0.0.1", 0), p("127.0.0.1", 10), tcpstate.CloseWait),
		SSKey(p("127.0.0.1", 11), p("127.0.0.2", 1), tcpstate.TimeWait),
	}
	WaitFor(tb, 5*time.Second, "the zoo's closing sockets (FIN_WAIT2, CLOSE_WAIT, TIME_WAIT)", func() bool {
		keys, ok, _ := z.SS(tb, "-tan", nil, 0)
		if !ok {
			return false
		}
		for _, k := range want {
			if _, found := slices.BinarySearch(keys, k); !found {
				return false
			}
		}
		return true
	})
	return z
}

func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// socket opens a TCP socket with SO_REUSEADDR, then opts.
func (z *SSZoo) socket(tb testing.TB, fam int, opts ...func(fd int) error) int {
	tb.Helper()
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	z.fds = append(z.fds, fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		tb.Fatal(err)
	}
	for _, o := range opts {
		if err := o(fd); err != nil {
			tb.Fatal(err)
		}
	}
	return fd
}

func (z *SSZoo) bind(tb testing.TB, fd int, at netip.AddrPort) {
	tb.Helper()
	if err := unix.Bind(fd, sockaddrOf(at)); err != nil {
		tb.Fatalf("bind %v: %v", at, err)
	}
	z.ports[int(at.Port())] = true
}

func (z *SSZoo) listen(tb testing.TB, fam int, at netip.AddrPort, opts ...func(fd int) error) int {
	tb.Helper()
	fd := z.socket(tb, fam, opts...)
	z.bind(tb, fd, at)
	if err := unix.Listen(fd, 16); err != nil {
		tb.Fatal(err)
	}
	return fd
}

// connect opens a client, bound to from unless from is the zero AddrPort
// (then the kernel picks an ephemeral port: the socket is autobound),
// connects it to the listener lfd at to and accepts. Loopback handshakes
// complete within connect, so accept does not wait.
func (z *SSZoo) connect(tb testing.TB, fam int, from, to netip.AddrPort, lfd int, opts ...func(fd int) error) (client, server int) {
	tb.Helper()
	client = z.socket(tb, fam, opts...)
	if from.IsValid() {
		z.bind(tb, client, from)
	}
	if err := unix.Connect(client, sockaddrOf(to)); err != nil {
		tb.Fatalf("connect %v: %v", to, err)
	}
	server, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		tb.Fatal(err)
	}
	z.fds = append(z.fds, server)
	return client, server
}

// SSKey names a socket the way every zoo comparison does: local and remote
// address and port, and the kernel's state number ("127.0.0.1:80
// 127.0.0.1:4000 1"). v4-mapped addresses stay v6 ("[::ffff:127.0.0.1]:80").
func SSKey(local, remote netip.AddrPort, state tcpstate.State) string {
	return fmt.Sprintf("%v %v %d", local, remote, state)
}

// ssStates maps ss's State column to the kernel's numbers.
var ssStates = func() map[string]tcpstate.State {
	m := map[string]tcpstate.State{}
	for s := tcpstate.Established; s < tcpstate.Max; s++ {
		m[s.String()] = s
	}
	return m
}()

// SSState is the state ss prints as name in its State column (ESTAB,
// TIME-WAIT); false for a name it does not print.
func SSState(name string) (tcpstate.State, bool) {
	s, ok := ssStates[name]
	return s, ok
}

// ParseSSHost reads ss -n's "ADDR[%DEV]:PORT" column: ADDR is a dotted quad,
// "[v6]" or "*" (the IPv6 wildcard, read as ::), PORT may be "*" (0).
func ParseSSHost(s string) (netip.AddrPort, error) {
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
	n := uint64(0)
	if port != "*" {
		if n, err = strconv.ParseUint(port, 10, 16); err != nil {
			return netip.AddrPort{}, err
		}
	}
	return netip.AddrPortFrom(a, uint16(n)), nil
}

// SS runs `ss -H flags args...` (exec'd directly, no shell) and returns the
// zoo's sockets it printed, as SSKeys, sorted; ok is false when ss refused
// the arguments (exited non-zero), and stderr is what it said. ss drops its
// State column when the state mask has a single state: oneState is that
// state then (the caller knows it from its own parse of args).
func (z *SSZoo) SS(tb testing.TB, flags string, args []string, oneState tcpstate.State) (keys []string, ok bool, stderr string) {
	tb.Helper()
	cmd := exec.Command("ss", append([]string{"-H", flags}, args...)...)
	var serr strings.Builder
	cmd.Stderr = &serr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, false, serr.String()
		}
		tb.Fatalf("ss: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		local, err1 := ParseSSHost(f[len(f)-2])
		peer, err2 := ParseSSHost(f[len(f)-1])
		if err1 != nil || err2 != nil {
			tb.Fatalf("ss line %q: %v %v", line, err1, err2)
		}
		if !z.Mine(local, peer) {
			continue
		}
		st := oneState
		if len(f) == 5 {
			var known bool
			if st, known = SSState(f[0]); !known {
				tb.Fatalf("ss line %q: state %q", line, f[0])
			}
		}
		keys = append(keys, SSKey(local, peer, st))
	}
	slices.Sort(keys)
	return keys, true, serr.String()
}

// RequireSS skips the test unless it runs as root (the zoo sets SO_MARK and
// SO_BINDTODEVICE), and fails it if ss (iproute2) is not installed.
func RequireSS(tb testing.TB) {
	tb.Helper()
	RequireRoot(tb)
	if _, err := exec.LookPath("ss"); err != nil {
		tb.Fatalf("the test compares with ss (iproute2): %v", err)
	}
}

// SSAtoms are predicates over the zoo: every kind of condition and every
// operator spelling, hosts in every form, v4 prefixes against v4-mapped
// sockets, impossible ports; fwmark, autobound (decided by the kernel's
// bytecode), dev and cgroup (user space only). extra are appended as they
// are.
func (z *SSZoo) SSAtoms(extra ...string) []string {
	a := []string{
		"sport = :%[1]d", "dport == :%[2]d", "sport eq %[3]d", "dport :%[4]d",
		"sport != :%[5]d", "dport ne :%[1]d", "sport neq :%[2]d",
		"sport < :%[4]d", "sport lt :%[6]d", "dport > :%[2]d", "dport gt :%[10]d",
		"sport <= :%[3]d", "sport le :%[7]d", "dport leq :%[4]d",
		"sport >= :%[5]d", "dport >= :%[3]d", "dport ge :%[3]d", "sport geq :%[9]d",
		"src 127.0.0.1", "src 127.0.0.2:%[2]d", "dst 127.0.0.0/8", "dst 127.0.0.2/31",
		"src [::1]", "src [::1]:%[3]d", "dst [::ffff:127.0.0.1]", "src ::ffff:127.0.0.0/104",
		"dst 0.0.0.0/0", "src *:%[4]d", "src :%[5]d", "dst *", "src [::/0]",
		"src = 127.0.0.3/32:%[7]d", "dst 127.0.0.5", "src 0.0.0.0", "src [::]", "dst [::]:*",
		"src 127.1", "dst 0/1", "src 128.0.0.0/1", "src default", "dst any:%[1]d",
		"src 127.0.0.0/255.255.255.0", "dst ::1:",
		"autobound", "not autobound",
		"fwmark = 0x15", "fwmark 0x7", "fwmark 0x10/0xf0", "fwmark != 0", "fwmark 0/0x1",
		"dev lo", "dev = 1", "dev != lo",
		"cgroup /",
		"sport = *", "sport > *", "dport < :0", "sport <= :65536", "sport = :65536",
	}
	P := z.Port
	out := make([]string, 0, len(a)+len(extra))
	for _, s := range a {
		if strings.Contains(s, "%") {
			s = fmt.Sprintf(s, P(0), P(1), P(2), P(3), P(4), P(5), P(6), P(7), P(8), P(9))
		}
		out = append(out, s)
	}
	return append(out, extra...)
}

// SSCase is one set of ss filter arguments.
type SSCase struct {
	Args  []string
	Valid bool // generated as valid (for counting only: ss has the last word)
}

// SSGen generates ss filter expressions from ss's grammar over atoms, from
// a fixed seed: the same expressions every run.
type SSGen struct {
	r     *rand.Rand
	atoms []string
}

// NewSSGen returns a generator over atoms (SSAtoms, usually) seeded with
// seed1, seed2.
func NewSSGen(atoms []string, seed1, seed2 uint64) *SSGen {
	return &SSGen{r: rand.New(rand.NewPCG(seed1, seed2)), atoms: atoms}
}

var (
	ssBinops = []string{"and", "&", "&&", "or", "|", "||"}
	ssNotops = []string{"not", "!"}
)

func (g *SSGen) pick(s []string) string { return s[g.r.IntN(len(s))] }

// Expr builds a random expression of at most depth levels: atoms, binary
// operators in every spelling, negation, juxtaposition (which is "and"),
// unparenthesized precedence mixes and parentheses.
func (g *SSGen) Expr(depth int) string {
	if depth == 0 {
		return g.pick(g.atoms)
	}
	switch g.r.IntN(7) {
	case 0:
		return g.pick(g.atoms)
	case 1:
		return "( " + g.Expr(depth-1) + " " + g.pick(ssBinops) + " " + g.Expr(depth-1) + " )"
	case 2:
		return g.pick(ssNotops) + " " + g.Expr(depth-1)
	case 3: // juxtaposition
		return g.Expr(depth-1) + " " + g.Expr(depth-1)
	case 4: // a precedence mix, unparenthesized
		return g.Expr(depth-1) + " " + g.pick(ssBinops) + " " + g.Expr(depth-1) + " " + g.pick(ssBinops) + " " + g.Expr(depth-1)
	case 5:
		return "( " + g.Expr(depth-1) + " )"
	default:
		return g.Expr(depth-1) + " " + g.pick(ssBinops) + " " + g.Expr(depth-1)
	}
}

// Break turns a valid expression into one ss refuses (or, for a few
// mutations, might accept: the tests only ask that they agree with ss).
func (g *SSGen) Break(e string) string {
	w := strings.Fields(e)
	switch g.r.IntN(8) {
	case 0:
		return e + " or"
	case 1:
		return "and " + e
	case 2:
		return e + " )"
	case 3:
		return "( " + e
	case 4: // glue a word to the next: "sport=" or "(dport"
		if len(w) > 1 {
			i := g.r.IntN(len(w) - 1)
			return strings.Join(slices.Concat(w[:i], []string{w[i] + w[i+1]}, w[i+2:]), " ")
		}
		return e + " not"
	case 5:
		return e + " state established"
	case 6:
		return strings.Replace(e, "src", "src !=", 1) + " dst > 10.0.0.1"
	default:
		return e + " " + g.pick([]string{"src ::1", "sport = :nosuchport", "dev nosuch0", "fwmark = x", "dst 10.0.0.256", "10.0.0.1", "cgroup /nosuch", "sport > 127.0.0.1:80"})
	}
}

// Cases generates n cases: an expression of 1 to 3 levels after one of
// prefixes (whole arguments: state words), given as one argument (ss splits
// it) or as one argument a word. If brokenEvery > 0, every brokenEvery-th
// case is broken (Valid false).
func (g *SSGen) Cases(n int, prefixes [][]string, brokenEvery int) []SSCase {
	var cs []SSCase
	for i := range n {
		e := g.Expr(1 + g.r.IntN(3))
		valid := brokenEvery <= 0 || i%brokenEvery != brokenEvery-1
		if !valid {
			e = g.Break(e)
		}
		args := slices.Clone(prefixes[g.r.IntN(len(prefixes))])
		if g.r.IntN(2) == 0 {
			args = append(args, e)
		} else {
			args = append(args, strings.Fields(e)...)
		}
		cs = append(cs, SSCase{args, valid})
	}
	return cs
}

// FirstLine is s up to its first newline: ss's complaint, for a message.
func FirstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
