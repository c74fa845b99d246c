package tracer

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/snapshot"
)

// cookieOf finds the sock_diag cookie of the TCP socket with this local
// port and remote port (0: a listener). Dumping generates the cookie in the
// kernel, which is what SeedOwners relies on.
func cookieOf(t *testing.T, local, remote uint16) uint64 {
	t.Helper()
	res, err := snapshot.Dump(context.Background(), snapshot.Options{TCP: true, IPv4: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Sockets {
		if s.Local.Port() == local && s.Remote.Port() == remote && s.State != tcpstate.TimeWait {
			return s.Cookie
		}
	}
	t.Fatalf("no socket %d -> %d in the dump", local, remote)
	return 0
}

func portOf(a net.Addr) uint16 { return uint16(a.(*net.TCPAddr).Port) }

func addrOf(ln net.Listener) netip.Addr {
	return ln.Addr().(*net.TCPAddr).AddrPort().Addr()
}

// lingerZero makes close() abort the connection with a RST: ESTABLISHED
// (or CLOSE_WAIT) -> CLOSE inside close(), in the owner.
func lingerZero(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
}

// eventOf waits for the transition old->new of the socket with this local
// and remote port.
func eventOf(t *testing.T, col *collector, local, remote uint16, old, new tcpstate.State) Event {
	t.Helper()
	var found Event
	testutil.WaitFor(t, 5*time.Second, old.KernelName()+"->"+new.KernelName(), func() bool {
		events := col.snapshot(local)
		i := slices.IndexFunc(events, func(ev Event) bool {
			return ev.Kind == StateChange && ev.Local.Port() == local && ev.Remote.Port() == remote && ev.Old == old && ev.New == new
		})
		if i >= 0 {
			found = events[i]
		}
		return i >= 0
	})
	return found
}

// Sockets older than the tracer: a transition that runs in a process
// holding the socket lock (close with SO_LINGER 0, a listener's close)
// names that process whatever the socket's history; one that runs in
// softirq names the owner user space seeded from its snapshot (on
// loopback it runs in the peer's process: the current task is not it),
// and nobody when nothing was seeded.
func TestOwnersOfOlderSockets(t *testing.T) {
	me := uint32(os.Getpid())
	ln, lport := plainListener(t)
	seededClient, seededServer := testutil.Pair(t, ln)
	plainClient, plainServer := testutil.Pair(t, ln)
	abortClient, abortServer := testutil.Pair(t, ln)
	col := startTracer(t, Options{})

	seededPort := portOf(seededClient.LocalAddr())
	seed := Task{PID: 4321, Comm: "seeded", CgroupID: 9}
	lnSeed := Task{PID: 4322, Comm: "listener"}
	err := col.tr.SeedOwners([]OwnerSeed{
		{Cookie: cookieOf(t, lport, seededPort), Owner: seed},
		{Cookie: cookieOf(t, lport, 0), Owner: lnSeed},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A new child is a copy of its listener, cookie included, until the
	// kernel gives it its own just after LISTEN->SYN_RECV (6.1): it must
	// not take the listener's seed.
	newClient, _ := testutil.Pair(t, ln)
	if ev := eventOf(t, col, lport, portOf(newClient.LocalAddr()), tcpstate.SynRecv, tcpstate.Established); ev.OwnerSource == OwnerSnapshot {
		t.Errorf("a new child took a seeded owner %+v: its listener's cookie", ev.Owner)
	}

	// The peer's FIN: ESTABLISHED->CLOSE_WAIT in softirq, in this process.
	seededClient.Close()
	ev := eventOf(t, col, lport, seededPort, tcpstate.Established, tcpstate.CloseWait)
	if ev.OwnerSource != OwnerSnapshot || ev.Owner != seed {
		t.Errorf("softirq transition of a seeded socket: owner %+v (%s), want %+v (snapshot)", ev.Owner, ev.OwnerSource, seed)
	}
	plainPort := portOf(plainClient.LocalAddr())
	plainClient.Close()
	if ev := eventOf(t, col, lport, plainPort, tcpstate.Established, tcpstate.CloseWait); ev.OwnerSource != OwnerUnknown {
		t.Errorf("softirq transition of an unseeded older socket: owner %+v (%s), want unknown: the running task is not its owner",
			ev.Owner, ev.OwnerSource)
	}
	// Its owner's close() runs in the owner: CLOSE_WAIT->LAST_ACK names us.
	seededServer.Close()
	if ev := eventOf(t, col, lport, seededPort, tcpstate.CloseWait, tcpstate.LastAck); ev.OwnerSource != OwnerTask || ev.Owner.PID != me {
		t.Errorf("close() of a seeded socket: owner %d (%s), want this process %d (task)", ev.Owner.PID, ev.OwnerSource, me)
	}
	plainServer.Close()

	// An abort inside close(): ESTABLISHED->CLOSE, no FIN, in the owner.
	abortPort := portOf(abortClient.LocalAddr())
	lingerZero(t, abortServer)
	abortServer.Close()
	if ev := eventOf(t, col, lport, abortPort, tcpstate.Established, tcpstate.Close); ev.OwnerSource != OwnerTask || ev.Owner.PID != me {
		t.Errorf("SO_LINGER 0 close of an older socket: owner %d (%s), want this process %d (task)", ev.Owner.PID, ev.OwnerSource, me)
	}
	// The peer's side of that RST runs in softirq: not ours to claim.
	if ev := eventOf(t, col, abortPort, lport, tcpstate.Established, tcpstate.Close); ev.OwnerSource != OwnerUnknown {
		t.Errorf("the RST's other side: owner %d (%s), want unknown", ev.Owner.PID, ev.OwnerSource)
	}
	io.Copy(io.Discard, abortClient)

	// The older listener's own close.
	ln.Close()
	if ev := eventOf(t, col, lport, 0, tcpstate.Listen, tcpstate.Close); ev.OwnerSource != OwnerTask || ev.Owner.PID != me {
		t.Errorf("LISTEN->CLOSE of an older listener: owner %d (%s), want this process %d (task)", ev.Owner.PID, ev.OwnerSource, me)
	}
}

// With a pid filter, a child's handshake passes when the filtered process
// holds its listener (a pre-fork worker, which may be the one to accept
// it) though another process made the listener; not when it does not.
func TestPIDFilterHolder(t *testing.T) {
	me := uint32(os.Getpid())
	const worker = 999999 // a pid no process has: the events' owner is never it
	held, heldPort := plainListener(t)
	other, otherPort := plainListener(t)
	col := startTracer(t, Options{PID: worker})
	netns := ownNetns(t)
	master := Task{PID: me, Comm: "master"}
	err := col.tr.SeedListeners([]ListenerSeed{
		{Netns: netns, Addr: addrOf(held), Port: heldPort, Inode: socketInode(t, held), Owner: master, Holders: []uint32{me, worker}},
		{Netns: netns, Addr: addrOf(other), Port: otherPort, Inode: socketInode(t, other), Owner: master, Holders: []uint32{me}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ln := range []net.Listener{held, other} {
		c, s := testutil.Pair(t, ln)
		c.Close()
		s.Close()
	}
	got := col.waitEvents(t, heldPort, 2)
	if tr := transitions(got[:2]); tr != "LISTEN>SYN_RECV SYN_RECV>ESTABLISHED" {
		t.Errorf("handshake on a listener the filtered pid holds: %s, want LISTEN>SYN_RECV SYN_RECV>ESTABLISHED", tr)
	}
	for _, ev := range got[:2] {
		if ev.OwnerSource != OwnerListener || ev.Owner.PID != me || ev.ListenerInode != socketInode(t, held) {
			t.Errorf("%s: owner %d (%s), listener %d; want the listener's %d (listener) and its inode", transition(ev), ev.Owner.PID, ev.OwnerSource, ev.ListenerInode, me)
		}
	}
	// The accept and what follows are this process's, not the worker's:
	// absent. What is absent shows only once later events have arrived: a
	// handshake on a third listener the worker holds comes through the
	// same ring after them.
	barrier, barrierPort := plainListener(t)
	if err := col.tr.SeedListeners([]ListenerSeed{{Netns: netns, Addr: addrOf(barrier), Port: barrierPort, Owner: master, Holders: []uint32{worker}}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp4", barrier.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	col.waitEvents(t, barrierPort, 1)
	if got := col.snapshot(heldPort); len(got) != 2 {
		t.Errorf("events on the held listener's port: %s, want only the handshake", transitions(got))
	}
	if got := col.snapshot(otherPort); len(got) != 0 {
		t.Errorf("events on a listener the filtered pid does not hold: %s, want none", transitions(got))
	}
}
