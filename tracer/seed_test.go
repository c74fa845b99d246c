package tracer

import (
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// plainListener listens on 127.0.0.1 without MPTCP: one TCP sock per side.
func plainListener(t *testing.T) (net.Listener, uint16) {
	t.Helper()
	return plainListenerOn(t, "127.0.0.1:0")
}

func plainListenerOn(t *testing.T, addr string) (net.Listener, uint16) {
	t.Helper()
	lc := net.ListenConfig{}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, uint16(ln.Addr().(*net.TCPAddr).Port)
}

// handshake connects to ln, accepts, and returns the server side's
// LISTEN->SYN_RECV event once the tracer has it. The child is found by its
// sock: before 6.x, LISTEN->SYN_RECV fires before the child has the peer's
// address.
func handshake(t *testing.T, col *collector, ln net.Listener, port uint16) Event {
	t.Helper()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	var found Event
	testutil.WaitFor(t, 5*time.Second, "the server side's LISTEN->SYN_RECV", func() bool {
		events := col.snapshot(port)
		// the child's SYN_RECV->ESTABLISHED, then back to its LISTEN->SYN_RECV
		// (the sock's address may have served an earlier child)
		i := slices.IndexFunc(events, func(ev Event) bool {
			return ev.Kind == StateChange && ev.Old == tcpstate.SynRecv && ev.Remote.Port() == client
		})
		for j := i - 1; i > 0 && j >= 0; j-- {
			if ev := events[j]; ev.Sock == events[i].Sock && ev.Kind == StateChange && ev.Old == tcpstate.Listen && ev.New == tcpstate.SynRecv {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// Listeners older than the tracer: the BPF side never saw them enter
// LISTEN, so their first connection's handshake has no owner to inherit;
// the first accept names one (the acceptor), and SeedListeners names one
// from user space at once, without replacing what the BPF side knows.
func TestOlderListenerOwner(t *testing.T) {
	me := uint32(os.Getpid())
	ln1, port1 := plainListener(t)
	ln2, port2 := plainListener(t)
	// the same port on another address, another owner
	ln3, _ := plainListenerOn(t, "127.0.0.2:"+strconv.Itoa(int(port2)))
	col := startTracer(t, Options{})

	if ev := handshake(t, col, ln1, port1); ev.OwnerSource != OwnerUnknown {
		t.Errorf("first handshake on an unknown listener: owner %d (%s), want none", ev.Owner.PID, ev.OwnerSource)
	}
	if ev := handshake(t, col, ln1, port1); ev.OwnerSource != OwnerListener || ev.Owner.PID != me {
		t.Errorf("handshake after the listener's first accept: owner %d (%s), want %d from the listener", ev.Owner.PID, ev.OwnerSource, me)
	}

	netns := col.snapshot(port1)[0].Netns
	loopback := netip.MustParseAddr("127.0.0.1")
	seed := []ListenerSeed{
		{Netns: netns, Addr: loopback, Port: port2, Inode: 42, Owner: Task{PID: 4242, Comm: "seeded", CgroupID: 7}},
		{Netns: netns, Addr: loopback, Port: port1, Inode: 43, Owner: Task{PID: 4243, Comm: "stale"}}, // BPF's entry wins
		{Netns: netns, Addr: netip.MustParseAddr("127.0.0.2"), Port: port2, Inode: 44, Owner: Task{PID: 4244, Comm: "other"}},
	}
	if err := col.tr.SeedListeners(seed); err != nil {
		t.Fatal(err)
	}
	// every connection, not just the first: the child's LISTEN->SYN_RECV
	// must not take the listener's entry away
	for range 2 {
		if ev := handshake(t, col, ln2, port2); ev.OwnerSource != OwnerListener || ev.Owner.PID != 4242 || ev.Owner.Comm != "seeded" || ev.Owner.CgroupID != 7 || ev.ListenerInode != 42 {
			t.Errorf("handshake on a seeded listener: owner %+v (%s), listener inode %d, want pid 4242 \"seeded\" cgroup 7 and inode 42 from the listener", ev.Owner, ev.OwnerSource, ev.ListenerInode)
		}
	}
	if ev := handshake(t, col, ln3, port2); ev.OwnerSource != OwnerListener || ev.Owner.PID != 4244 {
		t.Errorf("handshake on the port's other address: owner %d (%s), want 4244 from its own listener", ev.Owner.PID, ev.OwnerSource)
	}
	if ev := handshake(t, col, ln1, port1); ev.Owner.PID != me || ev.ListenerInode != socketInode(t, ln1) {
		t.Errorf("handshake on a listener the BPF side knew: owner %d, listener inode %d, want %d and its own inode %d (the seed must not replace them)",
			ev.Owner.PID, ev.ListenerInode, me, socketInode(t, ln1))
	}
}

// socketInode is the inode of a listener's socket, as sock_diag and the
// BPF side's sock_ino() name it.
func socketInode(t *testing.T, ln net.Listener) uint64 {
	t.Helper()
	sc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return st.Ino
}

// More owner seeds than the map holds: the last MaxSockets are in the map,
// as the LRU would leave them, and nothing fails. (SeedOwners sends only
// those: a million seeds at serve's start cost a quarter of the work.)
func TestSeedOwnersPastCapacity(t *testing.T) {
	const capacity = 4096
	col := startTracer(t, Options{MaxSockets: capacity})
	seeds := make([]OwnerSeed, 3*capacity)
	for i := range seeds {
		// cookies no socket has yet: sock_diag counts up from 1
		seeds[i] = OwnerSeed{Cookie: 1<<62 + uint64(i), Owner: Task{PID: uint32(i + 1), Comm: "seeded"}}
	}
	if err := col.tr.SeedOwners(seeds); err != nil {
		t.Fatal(err)
	}
	var key uint64
	var val socklifeTaskId
	first, last, n := false, false, 0
	for it := col.tr.maps.Seeded.Iterate(); it.Next(&key, &val); {
		n++
		first = first || key == seeds[0].Cookie
		last = last || key == seeds[len(seeds)-1].Cookie && val.Tgid == uint32(len(seeds))
	}
	if n != capacity || first || !last {
		t.Errorf("the map holds %d seeds (the first: %v, the last: %v), want the last %d", n, first, last, capacity)
	}
}
