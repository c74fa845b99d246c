package tracer

import (
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// The exact transitions of each socket of one loopback connection.
const (
	listenerSeq = "CLOSE>LISTEN LISTEN>CLOSE"
	// the side that closes first ends in TIME_WAIT, which is no state change
	activeCloserClient = "CLOSE>SYN_SENT SYN_SENT>ESTABLISHED ESTABLISHED>FIN_WAIT1 FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>CLOSE"
	passiveCloserChild = "LISTEN>SYN_RECV SYN_RECV>ESTABLISHED accept ESTABLISHED>CLOSE_WAIT CLOSE_WAIT>LAST_ACK LAST_ACK>CLOSE"
	activeCloserChild  = "LISTEN>SYN_RECV SYN_RECV>ESTABLISHED accept ESTABLISHED>FIN_WAIT1 FIN_WAIT1>FIN_WAIT2 FIN_WAIT2>CLOSE"
	passiveCloserClnt  = "CLOSE>SYN_SENT SYN_SENT>ESTABLISHED ESTABLISHED>CLOSE_WAIT CLOSE_WAIT>LAST_ACK LAST_ACK>CLOSE"
)

// stateHooks runs a test once per state-change hook, forcing each.
func stateHooks(t *testing.T, run func(t *testing.T, opts Options)) {
	env := envDisabledHooks()
	for _, h := range []Hook{HookTPBTF, HookRawTracepoint, HookTracepoint} {
		if slices.Contains(env, h.String()) {
			continue // the matrix runner turned this one off
		}
		t.Run(h.String(), func(t *testing.T) {
			run(t, Options{PID: uint32(os.Getpid()), stateHook: h})
		})
	}
}

// conn is one loopback connection: client side, accepted side, listener.
type conn struct {
	ln             net.Listener
	client, server net.Conn
	port           uint16
}

// dial listens on lnAddr with Go's defaults (MPTCP on Linux, as real Go
// servers do), connects to dialHost and accepts.
func dial(t *testing.T, network, lnAddr, dialHost string) *conn {
	t.Helper()
	ln, err := net.Listen(network, lnAddr)
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	client, err := net.Dial("tcp", net.JoinHostPort(dialHost, strconv.Itoa(int(port))))
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return &conn{ln: ln, client: client, server: server, port: port}
}

func v4conn(t *testing.T) *conn        { return dial(t, "tcp4", "127.0.0.1:0", "127.0.0.1") }
func v6conn(t *testing.T) *conn        { return dial(t, "tcp6", "[::1]:0", "::1") }
func dualStackConn(t *testing.T) *conn { return dial(t, "tcp", ":0", "127.0.0.1") }

// closeInOrder closes first, waits for the peer to see EOF, then closes the
// peer and the listener: the same transitions every run.
func (c *conn) closeInOrder(t *testing.T, first, second net.Conn) {
	t.Helper()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(second); err != nil {
		t.Fatal(err)
	}
	second.Close()
	c.ln.Close()
}

// Which side of a traced connection closes first.
const (
	clientFirst = true
	serverFirst = false
)

// traceConn starts a tracer, opens a connection with open, closes it with
// the client or the server first, and waits for the 13 events of its three
// sockets (listener, client, child), which it returns by socket.
func traceConn(t *testing.T, opts Options, open func(*testing.T) *conn, byClient bool) (*collector, *conn, map[string][]Event) {
	t.Helper()
	col := startTracer(t, opts)
	c := open(t)
	if byClient {
		c.closeInOrder(t, c.client, c.server)
	} else {
		c.closeInOrder(t, c.server, c.client)
	}
	return col, c, bySock(col.waitEvents(t, c.port, 13))
}

func TestClientClosesFirst(t *testing.T) {
	stateHooks(t, func(t *testing.T, opts Options) {
		col, c, socks := traceConn(t, opts, v4conn, clientFirst)
		checkHooks(t, col.tr)
		checkSocket(t, "listener", socks["CLOSE>LISTEN"], listenerSeq)
		checkSocket(t, "client", socks["CLOSE>SYN_SENT"], activeCloserClient)
		checkSocket(t, "child", socks["LISTEN>SYN_RECV"], passiveCloserChild)
		checkAccept(t, socks["LISTEN>SYN_RECV"], c.port)
		checkAddrs(t, socks["CLOSE>SYN_SENT"], "127.0.0.1", c.port, false)
		checkNoLoss(t, col.tr)
		col.saveRaw(t, "client_closes_first_"+filepath.Base(t.Name()))
	})
}

func TestServerClosesFirst(t *testing.T) {
	stateHooks(t, func(t *testing.T, opts Options) {
		col, c, socks := traceConn(t, opts, v4conn, serverFirst)
		checkSocket(t, "listener", socks["CLOSE>LISTEN"], listenerSeq)
		checkSocket(t, "client", socks["CLOSE>SYN_SENT"], passiveCloserClnt)
		checkSocket(t, "child", socks["LISTEN>SYN_RECV"], activeCloserChild)
		checkAccept(t, socks["LISTEN>SYN_RECV"], c.port)
		checkNoLoss(t, col.tr)
	})
}

func TestConnectRefused(t *testing.T) {
	testutil.RequireRoot(t)
	// A port nobody listens on: bound, never listened, so the SYN gets a RST.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(sa.(*unix.SockaddrInet4).Port)
	stateHooks(t, func(t *testing.T, opts Options) {
		opts.PID = 0
		opts.DPorts = []uint16{port} // the port filter, this time, rather than the owner
		col := startTracer(t, opts)
		if _, err := net.Dial("tcp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String()); err == nil {
			t.Fatal("connect to a closed port succeeded")
		}
		socks := bySock(col.waitEvents(t, port, 2))
		checkSocket(t, "client", socks["CLOSE>SYN_SENT"], "CLOSE>SYN_SENT SYN_SENT>CLOSE")
		checkNoLoss(t, col.tr)
	})
}

func TestIPv6(t *testing.T) {
	stateHooks(t, func(t *testing.T, opts Options) {
		col, c, socks := traceConn(t, opts, v6conn, clientFirst)
		checkSocket(t, "client", socks["CLOSE>SYN_SENT"], activeCloserClient)
		checkSocket(t, "child", socks["LISTEN>SYN_RECV"], passiveCloserChild)
		checkAddrs(t, socks["CLOSE>SYN_SENT"], "::1", c.port, false)
		checkAddrs(t, socks["LISTEN>SYN_RECV"], "::1", c.port, true)
		checkNoLoss(t, col.tr)
		col.saveRaw(t, "ipv6_"+filepath.Base(t.Name()))
	})
}

// A dual-stack [::] listener accepting an IPv4 client: the child is an
// AF_INET6 socket with v4-mapped addresses, which events show as IPv4.
func TestDualStackV4Mapped(t *testing.T) {
	stateHooks(t, func(t *testing.T, opts Options) {
		col, c, socks := traceConn(t, opts, dualStackConn, clientFirst)
		child := socks["LISTEN>SYN_RECV"]
		checkSocket(t, "child", child, passiveCloserChild)
		checkAccept(t, child, c.port)
		// LISTEN>SYN_RECV still carries the listener's [::] tuple.
		checkAddrs(t, child[1:], "127.0.0.1", c.port, true)
		for _, ev := range child {
			if ev.Family != unix.AF_INET6 {
				t.Errorf("child %s: family %d, want AF_INET6", transition(ev), ev.Family)
			}
		}
		checkNoLoss(t, col.tr)
		col.saveRaw(t, "dual_stack_"+filepath.Base(t.Name()))
	})
}

// checkAccept asserts the child's accept event names this process and the listener.
func checkAccept(t *testing.T, child []Event, port uint16) {
	t.Helper()
	i := slices.IndexFunc(child, func(ev Event) bool { return ev.Kind == Accept })
	if i < 0 {
		t.Errorf("no accept event")
		return
	}
	ev := child[i]
	if ev.Current.PID != uint32(os.Getpid()) || ev.Current.Comm == "" {
		t.Errorf("accept by %d %q, want this process %d", ev.Current.PID, ev.Current.Comm, os.Getpid())
	}
	if ev.Local.Port() != port {
		t.Errorf("accept listener port %d, want %d", ev.Local.Port(), port)
	}
	if !ev.Queue.Known || ev.Queue.Listener == 0 || ev.Queue.Backlog == 0 {
		t.Errorf("accept listener not described: %+v", ev.Queue)
	}
	if ev.Hook.String() != expectedAcceptHook() {
		t.Errorf("accept event from %s, want %s", ev.Hook, expectedAcceptHook())
	}
	if ev.OwnerSource != OwnerTask {
		t.Errorf("accepted child owner source %s, want task", ev.OwnerSource)
	}
	for _, before := range child[:i] {
		if before.OwnerSource != OwnerListener {
			t.Errorf("%s before accept: owner source %s, want listener", transition(before), before.OwnerSource)
		}
	}
}

// checkAddrs asserts the addresses of a socket's events once its tuple is
// complete (after SYN_SENT, whose local port is not chosen yet).
func checkAddrs(t *testing.T, events []Event, host string, port uint16, server bool) {
	t.Helper()
	want := netip.MustParseAddr(host)
	for _, ev := range events {
		if ev.Kind == StateChange && (ev.Old == tcpstate.Close || ev.Old == tcpstate.Listen) {
			continue // no local port yet, or the listener's tuple
		}
		remote, local := ev.Remote, ev.Local
		if server {
			remote, local = local, remote
		}
		if remote.Addr() != want || remote.Port() != port || local.Addr() != want || local.Port() == 0 {
			t.Errorf("%s: %s -> %s, want %s:* and %s:%d", transition(ev), ev.Local, ev.Remote, want, want, port)
		}
	}
}
