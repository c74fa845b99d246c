package snapshot

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// Helpers shared by the root tests of this package's sock_diag layer.

func mustDump(tb testing.TB, opts Options) *Result {
	tb.Helper()
	res, err := Dump(context.Background(), opts)
	if err != nil {
		tb.Fatalf("Dump(%+v): %v", opts, err)
	}
	return res
}

// waitForSocket dumps until a socket matching match shows up (the kernel
// finishes handshakes and FIN exchanges in softirq, a little after the
// system call that started them returns) and returns it.
func waitForSocket(tb testing.TB, opts Options, what string, match func(*Socket) bool) Socket {
	tb.Helper()
	var found Socket
	testutil.WaitFor(tb, 5*time.Second, what, func() bool {
		for _, s := range mustDump(tb, opts).Sockets {
			if match(&s) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// tuple matches an inet socket by protocol and both ends.
func tuple(p Protocol, local, remote netip.AddrPort) func(*Socket) bool {
	return func(s *Socket) bool { return s.Protocol == p && s.Local == local && s.Remote == remote }
}

// rawFD runs fn with the fd behind c.
func rawFD(tb testing.TB, c syscall.Conn, fn func(fd int)) {
	tb.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) { fn(int(fd)) }); err != nil {
		tb.Fatal(err)
	}
}

// fdInode is the inode fstat reports for a socket fd: what sock_diag must call it.
func fdInode(tb testing.TB, fd int) uint64 {
	tb.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		tb.Fatal(err)
	}
	return st.Ino
}

// sockEnds returns the kernel's own view of both ends of an inet socket, so
// the tests compare sock_diag with getsockname/getpeername rather than with
// Go's rendering (which unmaps v4-mapped addresses).
func sockEnds(tb testing.TB, fd int) (local, remote netip.AddrPort) {
	tb.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	local = sockaddrPort(sa)
	if peer, err := unix.Getpeername(fd); err == nil {
		remote = sockaddrPort(peer)
	} else if _, v6 := sa.(*unix.SockaddrInet6); v6 {
		remote = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
	} else {
		remote = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	return local, remote
}

func sockaddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	panic(fmt.Sprintf("unexpected sockaddr %T", sa))
}

// socketAs creates a socket whose owner is uid: sock_diag reports the
// creating thread's fsuid, which setfsuid changes for this thread only.
func socketAs(tb testing.TB, uid, family, typ int) int {
	tb.Helper()
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		prev, _ := unix.SetfsuidRetUid(uid)
		fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
		unix.Setfsuid(prev)
		// setfsuid returns the fsuid before the call: asking again tells
		// whether the restore worked. If not, the thread dies with us.
		if now, _ := unix.SetfsuidRetUid(prev); now == prev {
			runtime.UnlockOSThread()
		}
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		tb.Fatalf("creating socket as uid %d: %v", uid, r.err)
	}
	tb.Cleanup(func() { unix.Close(r.fd) })
	return r.fd
}

func selfNetns(tb testing.TB) uint32 {
	tb.Helper()
	ino, err := CurrentNetns()
	if err != nil {
		tb.Fatal(err)
	}
	return ino
}

func TestOptionsQueries(t *testing.T) {
	tcp4, tcp6 := query{TCP, unix.AF_INET}, query{TCP, unix.AF_INET6}
	udp4, udp6 := query{UDP, unix.AF_INET}, query{UDP, unix.AF_INET6}
	ux := query{Unix, unix.AF_UNIX}
	tests := []struct {
		name string
		opts Options
		want []query
	}{
		{"zero value lists everything", Options{}, []query{tcp4, tcp6, udp4, udp6, ux}},
		{"tcp", Options{TCP: true}, []query{tcp4, tcp6}},
		{"tcp ipv4", Options{TCP: true, IPv4: true}, []query{tcp4}},
		{"udp ipv6", Options{UDP: true, IPv6: true}, []query{udp6}},
		{"unix ignores families", Options{Unix: true, IPv4: true}, []query{ux}},
		{"tcp udp unix", Options{TCP: true, UDP: true, Unix: true}, []query{tcp4, tcp6, udp4, udp6, ux}},
		{"families alone mean every inet protocol", Options{IPv6: true}, []query{tcp6, udp6, ux}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.opts.queries()
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("queries() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDumpStatesFilteredInKernel checks that a state mask returns only those
// states, and that the zero mask means all of them.
func TestDumpStatesFilteredInKernel(t *testing.T) {
	testutil.RequireRoot(t)
	lnFD, _ := listenTCP(t, unix.AF_INET, "127.0.0.1", 8)
	lnLocal, _ := sockEnds(t, lnFD)
	c := dialTCP(t, lnLocal)
	cl, cr := sockEnds(t, c)
	waitForSocket(t, Options{TCP: true}, "the established client", tuple(TCP, cl, cr))

	for _, mask := range []tcpstate.Mask{tcpstate.Of(tcpstate.Listen), tcpstate.Of(tcpstate.Established)} {
		res := mustDump(t, Options{TCP: true, States: mask})
		for _, s := range res.Sockets {
			if !mask.Has(s.State) {
				t.Errorf("mask %v: got a %v socket %v -> %v", mask.States(), s.State, s.Local, s.Remote)
			}
		}
	}
	listeners := mustDump(t, Options{TCP: true, States: tcpstate.Of(tcpstate.Listen)}).Sockets
	if !containsSocket(listeners, tuple(TCP, lnLocal, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))) {
		t.Errorf("LISTEN dump lacks our listener %v", lnLocal)
	}
	if containsSocket(listeners, tuple(TCP, cl, cr)) {
		t.Errorf("LISTEN dump has the established client %v", cl)
	}
}

func TestDumpFamilyFilter(t *testing.T) {
	testutil.RequireRoot(t)
	listenTCP(t, unix.AF_INET, "127.0.0.1", 8)
	listenTCP(t, unix.AF_INET6, "::1", 8)
	for _, tt := range []struct {
		opts   Options
		family uint8
	}{
		{Options{TCP: true, IPv4: true}, unix.AF_INET},
		{Options{TCP: true, IPv6: true}, unix.AF_INET6},
	} {
		socks := mustDump(t, tt.opts).Sockets
		if len(socks) == 0 {
			t.Errorf("%+v: no sockets, want at least our listener", tt.opts)
		}
		for _, s := range socks {
			if s.Family != tt.family || s.Protocol != TCP {
				t.Errorf("%+v: got %v family %d", tt.opts, s.Protocol, s.Family)
			}
		}
	}
}

func containsSocket(socks []Socket, match func(*Socket) bool) bool {
	for i := range socks {
		if match(&socks[i]) {
			return true
		}
	}
	return false
}

// TestDumpAllocations: decoding allocates nothing per socket (the timers of
// TIME-WAIT sockets come in chunks), so a dump makes a fixed few dozen
// allocations plus under one per thousand sockets.
func TestDumpAllocations(t *testing.T) {
	testutil.RequireRoot(t)
	ln, _ := listenTCP(t, unix.AF_INET, "127.0.0.1", 200)
	for range 100 {
		tcpPair(t, ln)
	}
	var n int
	allocs := testing.AllocsPerRun(3, func() {
		n = len(mustDump(t, Options{TCP: true}).Sockets)
	})
	if limit := 100 + float64(n)/1000; n < 200 || allocs > limit {
		t.Errorf("Dump of %d sockets made %.0f allocations, want at most %.0f", n, allocs, limit)
	}
	t.Logf("%d sockets, %.0f allocations", n, allocs)
}

// Keep sees every socket of the dump and Result holds only what it keeps,
// in a slice sized by what was kept (the sockstat sizing would reserve
// room for every socket on the host): serve counts 100k sockets by state
// and keeps its few listeners.
func TestDumpKeepSeesAllKeepsFew(t *testing.T) {
	testutil.RequireRoot(t)
	ln, _ := listenTCP(t, unix.AF_INET, "127.0.0.1", 300)
	port, _ := sockEnds(t, ln)
	for range 200 {
		tcpPair(t, ln)
	}
	var mu sync.Mutex
	ours, seen := 0, 0
	res := mustDump(t, Options{TCP: true, Keep: func(s *Socket) bool {
		mu.Lock() // the dump workers call it at once
		defer mu.Unlock()
		seen++
		if s.Local.Port() == port.Port() || s.Remote.Port() == port.Port() {
			ours++
		}
		return s.State == tcpstate.Listen
	}})
	if ours != 401 {
		t.Errorf("Keep saw %d sockets on port %d, want the listener and 200 connections' two ends", ours, port.Port())
	}
	for _, s := range res.Sockets {
		if s.State != tcpstate.Listen {
			t.Errorf("kept a %v socket %v", s.State, s.Local)
		}
	}
	if !containsSocket(res.Sockets, tuple(TCP, port, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))) {
		t.Error("our listener not kept")
	}
	if c := cap(res.Sockets); c >= seen {
		t.Errorf("result has room for %d sockets: %d seen, %d kept", c, seen, len(res.Sockets))
	}
}
