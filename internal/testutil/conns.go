package testutil

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// MaxConnsPerHolder is how many connections one holder process keeps open:
// both ends live in the holder, and a process may hold at most 20,000 fds
// here (the hard RLIMIT_NOFILE), so 9,000 connections leave room to spare.
const MaxConnsPerHolder = 9000

// The environment that turns a re-executed test binary into a holder.
const (
	helperEnv = "SOCKLIFE_TESTUTIL_HELPER" // "conns" or "renamed"
	connsEnv  = "SOCKLIFE_TESTUTIL_CONNS"  // how many connections
	addrEnv   = "SOCKLIFE_TESTUTIL_ADDR"   // the loopback address to listen on
)

// Holder is one child process that holds connections open.
type Holder struct {
	PID int
	// Listener is where its connections go; the client ends come from 127.0.0.1.
	Listener netip.AddrPort
	Conns    int
}

// Conns is a set of established loopback TCP connections, client and server
// ends, held open by child processes until the test ends.
type Conns struct {
	N       int
	Holders []Holder
	procs   []*holderProc
}

// Close ends every holder at once: their exits reset all the connections
// in one burst, each socket going ESTABLISHED -> CLOSE. It returns when the
// holders have exited, so every socket is closed.
func (c *Conns) Close() {
	for _, p := range c.procs {
		p.stdin.Close()
	}
	for _, p := range c.procs {
		p.stop()
	}
}

// Sockets is how many sockets the connections and their listeners make.
func (c *Conns) Sockets() int { return 2*c.N + len(c.Holders) }

// PIDs are the holders' process ids.
func (c *Conns) PIDs() []int {
	pids := make([]int, len(c.Holders))
	for i, h := range c.Holders {
		pids[i] = h.PID
	}
	return pids
}

// holderProc is a running holder as the parent sees it. Its sockets were
// set to linger 0, so when stop makes it exit they reset the connections
// and leave no TIME-WAIT behind to skew the next test's counts.
type holderProc struct {
	*helperProc
	Holder
}

// OpenConns opens n established loopback TCP connections spread over
// child processes (re-executions of the test binary; see the package doc)
// and returns once all of them are established. The children exit when the
// test ends. Each holder listens on its own address, 127.0.0.2 and up, so
// that no two holders compete for the ~28,000 ephemeral ports of one
// destination.
func OpenConns(tb testing.TB, n int) *Conns {
	tb.Helper()
	return openConns(tb, n, MaxConnsPerHolder)
}

// BenchConns is how many connections the socket-listing benchmarks hold
// open: 100,000 sockets, a busy proxy's worth.
const BenchConns = 50000

// OpenBenchConns opens BenchConns connections for a benchmark, as root;
// SOCKLIFE_BENCH_CONNS overrides the count for a quick look.
func OpenBenchConns(b *testing.B) *Conns {
	b.Helper()
	RequireRoot(b)
	return OpenConns(b, EnvInt(b, "SOCKLIFE_BENCH_CONNS", BenchConns))
}

func openConns(tb testing.TB, n, perHolder int) *Conns {
	tb.Helper()
	if n <= 0 {
		tb.Fatalf("opening %d connections: want at least one", n)
	}
	holders := (n + perHolder - 1) / perHolder
	if holders > 250 {
		tb.Fatalf("opening %d connections: more than 250 holders", n)
	}
	procs := make([]*holderProc, holders)
	for i := range procs {
		share := n / holders
		if i < n%holders {
			share++
		}
		addr := netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)})
		p, err := startHolder(share, addr)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(p.stop)
		procs[i] = p
	}
	conns := &Conns{N: n, procs: procs}
	deadline := time.After(Scaled(helperReadyWithin))
	for _, p := range procs {
		port, err := p.waitReady(deadline)
		if err != nil {
			tb.Fatal(err)
		}
		p.Listener = netip.AddrPortFrom(p.Listener.Addr(), port)
		conns.Holders = append(conns.Holders, p.Holder)
	}
	return conns
}

func startHolder(n int, addr netip.Addr) (*holderProc, error) {
	h, err := startHelper("connection holder", "conns", connsEnv+"="+strconv.Itoa(n), addrEnv+"="+addr.String())
	if err != nil {
		return nil, err
	}
	// the port is known once the holder is ready
	return &holderProc{helperProc: h, Holder: Holder{PID: h.pid(), Conns: n, Listener: netip.AddrPortFrom(addr, 0)}}, nil
}

// Listen listens on address with plain TCP, not the MPTCP Go uses by
// default: one TCP sock per side, as most servers have. The test's end
// closes it.
func Listen(tb testing.TB, network, address string) net.Listener {
	tb.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), network, address)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// PlainListener listens on 127.0.0.1, an ephemeral port (see Listen).
func PlainListener(tb testing.TB) net.Listener { return Listen(tb, "tcp4", "127.0.0.1:0") }

// Port is ln's port.
func Port(ln net.Listener) uint16 { return uint16(ln.Addr().(*net.TCPAddr).Port) }

// Pair connects to ln and accepts: one established connection, both ends.
// The test's end closes them (closing one earlier is fine).
func Pair(tb testing.TB, ln net.Listener) (client, server *net.TCPConn) {
	tb.Helper()
	c, s, err := pair(ln)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

func pair(ln net.Listener) (client, server *net.TCPConn, err error) {
	c, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c.(*net.TCPConn), s.(*net.TCPConn), nil
}

// RawListener listens on addr:port (0: a port the kernel picks) with a
// blocking IPv4 socket of its own, for tests that accept (or do not) by
// hand: backlog is listen()'s. It returns the fd, closed at the test's end
// unless the test closes it first, and the port.
func RawListener(tb testing.TB, addr [4]byte, port uint16, backlog int) (int, uint16) {
	tb.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: addr, Port: int(port)}); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		tb.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	return fd, uint16(sa.(*unix.SockaddrInet4).Port)
}

// Churn makes n connections to ln one after another, each closed by the
// client first and then by the server once the client's FIN is in: every
// one leaves the same known transitions (the client in TIME_WAIT).
func Churn(tb testing.TB, ln net.Listener, n int) {
	tb.Helper()
	for range n {
		c, s, err := pair(ln)
		if err != nil {
			tb.Fatal(err)
		}
		c.Close()
		io.Copy(io.Discard, s)
		s.Close()
	}
}
