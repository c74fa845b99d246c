package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/ssfilter"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// The differential test of `socklife snapshot FILTER` against ss: a zoo of
// real TCP sockets on ports of the test's own, and ss filter expressions
// run through both.

// sszoo is a set of TCP sockets on ports base..base+ssZooPorts-1.
type sszoo struct {
	base  int
	fds   []int
	ports map[int]bool
}

const ssZooPorts = 16

func (z *sszoo) port(i int) int { return z.base + i }

// mine says whether a socket is one of the zoo's: every comparison leaves
// the rest of the host's sockets (and their churn) out.
func (z *sszoo) mine(local, remote netip.AddrPort) bool {
	return z.ports[int(local.Port())] || z.ports[int(remote.Port())]
}

func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func (z *sszoo) socket(t *testing.T, fam int, opts ...func(fd int) error) int {
	t.Helper()
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	z.fds = append(z.fds, fd)
	opts = append([]func(int) error{func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}}, opts...)
	for _, o := range opts {
		if err := o(fd); err != nil {
			t.Fatal(err)
		}
	}
	return fd
}

func (z *sszoo) bind(t *testing.T, fd int, at netip.AddrPort) {
	t.Helper()
	if err := unix.Bind(fd, sockaddrOf(at)); err != nil {
		t.Fatalf("bind %v: %v", at, err)
	}
	z.ports[int(at.Port())] = true
}

func (z *sszoo) listen(t *testing.T, fam int, at netip.AddrPort, opts ...func(fd int) error) int {
	t.Helper()
	fd := z.socket(t, fam, opts...)
	z.bind(t, fd, at)
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	return fd
}

// connect opens a client, bound to from unless from is the zero AddrPort
// (then the kernel picks an ephemeral port: the socket is autobound),
// connects it to the listener lfd at to and accepts. Loopback handshakes
// complete within connect, so accept does not wait.
func (z *sszoo) connect(t *testing.T, fam int, from, to netip.AddrPort, lfd int, opts ...func(fd int) error) (client, server int) {
	t.Helper()
	client = z.socket(t, fam, opts...)
	if from.IsValid() {
		z.bind(t, client, from)
	}
	if err := unix.Connect(client, sockaddrOf(to)); err != nil {
		t.Fatalf("connect %v: %v", to, err)
	}
	server, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	z.fds = append(z.fds, server)
	return client, server
}

// newSSZoo builds listeners on 127.0.0.1, 127.0.0.2, [::1] (v6only), [::]
// (dual stack), 0.0.0.0 (with a mark) and 127.0.0.1 bound to lo;
// established pairs over IPv4, IPv6 and v4-mapped IPv6, some clients on
// ports of ours, some autobound; a FIN_WAIT2/CLOSE_WAIT pair and a
// TIME_WAIT socket. Its ports are 26000-32767, below the ephemeral range
// and above the ssfilter package's zoo, whose test may run at the same time.
func newSSZoo(t *testing.T) *sszoo {
	t.Helper()
	z := &sszoo{base: 26000 + os.Getpid()%420*ssZooPorts, ports: map[int]bool{}}
	t.Cleanup(func() {
		for _, fd := range z.fds {
			unix.Close(fd)
		}
	})
	p := func(ip string, i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(z.port(i)))
	}
	v6only := func(on int) func(int) error {
		return func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, on) }
	}
	mark := func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, 0x15) }
	toLo := func(fd int) error { return unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "lo") }

	l0 := z.listen(t, unix.AF_INET, p("127.0.0.1", 0))
	l1 := z.listen(t, unix.AF_INET, p("127.0.0.2", 1))
	l2 := z.listen(t, unix.AF_INET6, p("::1", 2), v6only(1))
	l3 := z.listen(t, unix.AF_INET6, p("::", 3), v6only(0))
	l4 := z.listen(t, unix.AF_INET, p("0.0.0.0", 4), mark)
	z.listen(t, unix.AF_INET, p("127.0.0.1", 5), toLo)

	none := netip.AddrPort{}
	z.connect(t, unix.AF_INET, none, p("127.0.0.1", 0), l0)
	z.connect(t, unix.AF_INET, p("127.0.0.3", 6), p("127.0.0.2", 1), l1)
	z.connect(t, unix.AF_INET6, p("::1", 7), p("::1", 2), l2)
	z.connect(t, unix.AF_INET6, none, p("::1", 2), l2)
	z.connect(t, unix.AF_INET, p("127.0.0.1", 8), p("127.0.0.1", 3), l3)       // v4-mapped server side
	z.connect(t, unix.AF_INET6, none, p("::ffff:127.0.0.1", 3), l3, v6only(0)) // v4-mapped both sides
	z.connect(t, unix.AF_INET, p("127.0.0.4", 9), p("127.0.0.5", 4), l4)

	// FIN_WAIT2 (client) and CLOSE_WAIT (server): the client shuts its
	// writing side and keeps its descriptor.
	c, _ := z.connect(t, unix.AF_INET, p("127.0.0.1", 10), p("127.0.0.1", 0), l0)
	if err := unix.Shutdown(c, unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	// TIME_WAIT: the client closes first.
	c, s := z.connect(t, unix.AF_INET, p("127.0.0.1", 11), p("127.0.0.2", 1), l1)
	unix.Close(c)
	unix.Close(s)

	// The closing handshakes take microseconds on loopback: look until
	// they are done rather than sleep a guess.
	want := map[string]string{
		fmt.Sprintf("%d>%d", z.port(10), z.port(0)): "FIN_WAIT2",
		fmt.Sprintf("%d>%d", z.port(0), z.port(10)): "CLOSE_WAIT",
		fmt.Sprintf("%d>%d", z.port(11), z.port(1)): "TIME_WAIT",
	}
	testutil.WaitFor(t, 5*time.Second, "the zoo's closing sockets", func() bool {
		stdout, _, code := runCLI(t, "snapshot", "-ta", "--no-process", "-o", "ndjson")
		if code != 0 {
			return false
		}
		got := 0
		for _, s := range decodeNDJSON(t, stdout) {
			l, r := netip.MustParseAddrPort(s.Local), netip.MustParseAddrPort(s.Remote)
			if want[fmt.Sprintf("%d>%d", l.Port(), r.Port())] == s.State {
				got++
			}
		}
		return got == len(want)
	})
	return z
}

func decodeNDJSON(t *testing.T, out string) []render.SocketJSON {
	t.Helper()
	var socks []render.SocketJSON
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s render.SocketJSON
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("bad ndjson line %q: %v", sc.Text(), err)
		}
		socks = append(socks, s)
	}
	return socks
}

// ssKey names a socket as both tools print it: addresses, ports, state.
func ssKey(local, remote netip.AddrPort, state tcpstate.State) string {
	return fmt.Sprintf("%v %v %d", local, remote, state)
}

// socklifeKeys runs `socklife snapshot flags --no-process -o ndjson args`
// in process and returns the zoo's sockets it listed, sorted, and its exit
// status.
func (z *sszoo) socklifeKeys(t *testing.T, flags string, args []string) ([]string, int, string) {
	t.Helper()
	stdout, stderr, code := runCLI(t, append([]string{"snapshot", flags, "--no-process", "-o", "ndjson", "--"}, args...)...)
	if code != 0 {
		return nil, code, stderr
	}
	var keys []string
	for _, s := range decodeNDJSON(t, stdout) {
		l, err1 := netip.ParseAddrPort(s.Local)
		r, err2 := netip.ParseAddrPort(s.Remote)
		m, err3 := tcpstate.ParseFilter([]string{s.State})
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("socklife printed %+v: %v %v %v", s, err1, err2, err3)
		}
		if z.mine(l, r) {
			keys = append(keys, ssKey(l, r, tcpstate.State(bits.TrailingZeros32(uint32(m)))))
		}
	}
	slices.Sort(keys)
	return keys, 0, stderr
}

// ssStateNames maps ss's State column to kernel numbers.
var ssStateNames = map[string]tcpstate.State{
	"ESTAB": tcpstate.Established, "SYN-SENT": tcpstate.SynSent, "SYN-RECV": tcpstate.SynRecv,
	"FIN-WAIT-1": tcpstate.FinWait1, "FIN-WAIT-2": tcpstate.FinWait2, "TIME-WAIT": tcpstate.TimeWait,
	"UNCONN": tcpstate.Close, "CLOSE-WAIT": tcpstate.CloseWait, "LAST-ACK": tcpstate.LastAck,
	"LISTEN": tcpstate.Listen, "CLOSING": tcpstate.Closing,
}

// parseSSHost reads ss -n's "ADDR[%DEV]:PORT": ADDR a dotted quad, "[v6]"
// or "*" (IPv6 wildcard), PORT possibly "*" (0).
func parseSSHost(s string) (netip.AddrPort, error) {
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
	var n uint16
	if port != "*" {
		if _, err := fmt.Sscan(port, &n); err != nil {
			return netip.AddrPort{}, err
		}
	}
	return netip.AddrPortFrom(a, n), nil
}

// ssKeys runs ss -H flags args (exec'd directly, no shell) and returns the
// zoo's sockets it printed, sorted; ok is false when ss refused the
// arguments. ss drops its State column when the state mask has one state:
// oneState is that state then.
func (z *sszoo) ssKeys(t *testing.T, flags string, args []string, oneState tcpstate.State) (keys []string, ok bool, stderr string) {
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
		local, err1 := parseSSHost(f[len(f)-2])
		peer, err2 := parseSSHost(f[len(f)-1])
		if err1 != nil || err2 != nil {
			t.Fatalf("ss line %q: %v %v", line, err1, err2)
		}
		if !z.mine(local, peer) {
			continue
		}
		st := oneState
		if len(f) == 5 {
			var known bool
			if st, known = ssStateNames[f[0]]; !known {
				t.Fatalf("ss line %q: state %q", line, f[0])
			}
		}
		keys = append(keys, ssKey(local, peer, st))
	}
	slices.Sort(keys)
	return keys, true, serr.String()
}

// ssAtoms are predicates over the zoo: each kind of condition, several
// operator spellings, hosts in several forms, v4 prefixes against
// v4-mapped sockets; fwmark, autobound (decided by the kernel's bytecode)
// and dev (user space only).
func (z *sszoo) ssAtoms() []string {
	a := []string{
		"sport = :%[1]d", "dport == :%[2]d", "sport eq %[3]d", "dport :%[4]d",
		"sport != :%[5]d", "dport ne :%[1]d", "sport < :%[4]d", "dport > :%[2]d",
		"sport <= :%[3]d", "dport >= :%[3]d", "sport geq :%[9]d",
		"src 127.0.0.1", "src 127.0.0.2:%[2]d", "dst 127.0.0.0/8", "dst 127.0.0.2/31",
		"src [::1]", "src [::1]:%[3]d", "dst [::ffff:127.0.0.1]", "src ::ffff:127.0.0.0/104",
		"dst 0.0.0.0/0", "src *:%[4]d", "src :%[5]d", "dst *", "src [::/0]",
		"src 0.0.0.0", "src [::]", "src 127.1", "dst any:%[1]d",
		"autobound", "not autobound", "fwmark = 0x15", "fwmark != 0",
		"dev lo", "dev != lo", "sport > *",
	}
	P := z.port
	out := make([]string, len(a))
	for i, s := range a {
		out[i] = s
		if strings.Contains(s, "%") {
			out[i] = fmt.Sprintf(s, P(0), P(1), P(2), P(3), P(4), P(5), P(6), P(7), P(8), P(9))
		}
	}
	return out
}

// genSSExpr builds a random expression of at most depth levels.
func genSSExpr(r *rand.Rand, atoms []string, depth int) string {
	if depth == 0 {
		return atoms[r.IntN(len(atoms))]
	}
	op := []string{"and", "or", "&&", "||"}[r.IntN(4)]
	switch r.IntN(5) {
	case 0:
		return atoms[r.IntN(len(atoms))]
	case 1:
		return "( " + genSSExpr(r, atoms, depth-1) + " " + op + " " + genSSExpr(r, atoms, depth-1) + " )"
	case 2:
		return "not " + genSSExpr(r, atoms, depth-1)
	case 3: // juxtaposition is "and"
		return genSSExpr(r, atoms, depth-1) + " " + genSSExpr(r, atoms, depth-1)
	default:
		return genSSExpr(r, atoms, depth-1) + " " + op + " " + genSSExpr(r, atoms, depth-1)
	}
}

// ssCases are the examples, the state words, precedence, refused
// expressions, then generated ones; some as one argument, some as many.
func (z *sszoo) ssCases() [][]string {
	P := z.port
	cases := [][]string{
		{"state", "established", fmt.Sprintf("( dport = :%d or sport = :%d )", P(0), P(0))},
		{"dst", "127.0.0.2"},
		{"exclude", "listening"},
		{"state", "listening", "state", "close-wait"},
		{"exclude", "time-wait", "exclude", "established"},
		{"state", "bucket"},
		{"state", "fin-wait-2", "or", "src", "127.0.0.1"},
		{"excl", "all"},
		{"state", "unknown"},
		{"sport", "gt", fmt.Sprintf(":%d", P(2)), "and", "not", "dst", "127.0.0.0/8"},
		{fmt.Sprintf("sport = :%d or sport = :%d and sport = :%d", P(0), P(1), P(1))},
		{fmt.Sprintf("not sport = :%d or sport = :%d", P(0), P(0))},
		{"src inet:127.0.0.1"},
		{"src inet6:[::ffff:127.0.0.1]"},
		{"not dst 0.0.0.0/8"},
		{"autobound or sport = :" + fmt.Sprint(P(6))},
		{"dev lo or dport = :" + fmt.Sprint(P(4))},
		// Refused by ss (and so exit status 2).
		{"(dport", "=", fmt.Sprintf(":%d", P(0)), ")"},
		{"sport=:80"},
		{"dport = :80 or"},
		{"( src 127.0.0.1"},
		{"src 127.0.0.1", "state", "established"},
		{"state", "nosuch"},
		{"sport = :nosuchport"},
		{"dst 10.0.0.256"},
	}
	r := rand.New(rand.NewPCG(7, 11)) // fixed: the same expressions every run
	atoms := z.ssAtoms()
	prefixes := [][]string{nil, nil, {"state", "established"}, {"exclude", "listening"}, {"state", "connected"}}
	for range 40 {
		e := genSSExpr(r, atoms, 1+r.IntN(3))
		args := slices.Clone(prefixes[r.IntN(len(prefixes))])
		if r.IntN(2) == 0 {
			args = append(args, e)
		} else {
			args = append(args, strings.Fields(e)...)
		}
		cases = append(cases, args)
	}
	return cases
}

// TestSnapshotFilterAgainstSS runs each case through `socklife snapshot`
// and through the real ss, under -tan (all of them) and -tn and -tln (every
// third), and compares the zoo's sockets each lists.
func TestSnapshotFilterAgainstSS(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("ss"); err != nil {
		t.Fatalf("the test compares with ss (iproute2): %v", err)
	}
	z := newSSZoo(t)
	all, code, stderr := z.socklifeKeys(t, "-tan", nil)
	if code != 0 || len(all) < 20 {
		t.Fatalf("socklife snapshot -tan: exit %d, %d zoo sockets: %s", code, len(all), stderr)
	}
	variants := []struct {
		flags string
		mask  uint32 // what the flags give ssfilter.StateMask
	}{{"-tan", ssfilter.StatesAll}, {"-tn", 0}, {"-tln", ssfilter.StatesListening}}
	var compared, refused, partial, disagree int
	for i, args := range z.ssCases() {
		for _, v := range variants {
			if v.flags != "-tan" && i%3 != 0 {
				continue
			}
			oneState := tcpstate.State(0)
			if f, err := ssfilter.Parse(args, nil); err == nil {
				if m := f.StateMask(v.mask); bits.OnesCount32(m) == 1 {
					oneState = tcpstate.State(bits.TrailingZeros32(m))
				}
			}
			want, ok, serr := z.ssKeys(t, v.flags, args, oneState)
			got, code, stderr := z.socklifeKeys(t, v.flags, args)
			if !ok {
				refused++
				if code != 2 || strings.Count(stderr, "\n") != 1 {
					disagree++
					t.Errorf("%s %q: ss refused it (%s); socklife exit %d, stderr %q, want 2 and one line",
						v.flags, args, firstLineOf(serr), code, stderr)
				}
				break
			}
			compared++
			if len(want) > 0 && len(want) < len(all) {
				partial++
			}
			if code != 0 || !slices.Equal(got, want) {
				disagree++
				t.Errorf("%s %q: socklife (exit %d, %s):\n %q\nss:\n %q", v.flags, args, code, stderr, got, want)
			}
		}
	}
	t.Logf("%d runs compared with ss (%d selecting some but not all of the %d zoo sockets), %d refused by both; %d disagreements",
		compared, partial, len(all), refused, disagree)
	if compared < 30 {
		t.Errorf("only %d runs compared", compared)
	}
}

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
