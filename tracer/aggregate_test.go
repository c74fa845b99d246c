package tracer

import (
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/snapshot"
)

// Under Aggregate the kernel counts a namespace's connections, the census
// names the sockets in CLOSE_WAIT with their owners, and the ring carries
// no per-transition record. In a namespace of its own, so that every count
// is exact: five connections its clients close first (the server's ends
// sit in CLOSE_WAIT, owned by us, until we close them) and one refused
// connect.
func TestAggregate(t *testing.T) {
	start := time.Now()
	c := startTracer(t, Options{Aggregate: true})
	checkHooks(t, c.tr)
	ns := testutil.NamedNetns(t)
	var st unix.Stat_t
	if err := unix.Stat(ns, &st); err != nil {
		t.Fatal(err)
	}
	netns := uint32(st.Ino)

	var ln net.Listener
	var servers []*net.TCPConn
	var clientPorts []uint16
	testutil.InNetns(t, ns, func() {
		ln = testutil.PlainListener(t)
		for range 5 {
			cl, sv := testutil.Pair(t, ln)
			servers = append(servers, sv)
			clientPorts = append(clientPorts, uint16(cl.LocalAddr().(*net.TCPAddr).Port))
			cl.Close()
		}
		closed := testutil.PlainListener(t)
		addr := closed.Addr().String()
		closed.Close()
		if _, err := net.Dial("tcp4", addr); err == nil {
			t.Fatal("connect to a closed port succeeded")
		}
	})
	port := testutil.Port(ln)

	census, err := c.tr.NewCensus()
	if err != nil {
		t.Fatal(err)
	}
	defer census.Close()
	ours := func() (cws []CloseWait) {
		testutil.InNetns(t, ns, func() {
			tally, err := census.Take()
			if err != nil {
				t.Fatal(err)
			}
			cws = tally.CloseWait
		})
		return cws
	}
	var cws []CloseWait
	testutil.WaitFor(t, 5*time.Second, "5 sockets in CLOSE_WAIT", func() bool { cws = ours(); return len(cws) == 5 })
	var remotes []uint16
	for _, cw := range cws {
		remotes = append(remotes, cw.Remote.Port())
		if cw.Local.Port() != port || cw.Local.Addr().String() != "127.0.0.1" {
			t.Errorf("CLOSE_WAIT socket %v -> %v: want the server's end, local 127.0.0.1:%d", cw.Local, cw.Remote, port)
		}
		if cw.Netns != netns {
			t.Errorf("CLOSE_WAIT socket %v in netns %d, want %d", cw.Local, cw.Netns, netns)
		}
		if cw.OwnerSource == OwnerUnknown || cw.Owner.PID != uint32(os.Getpid()) {
			t.Errorf("CLOSE_WAIT socket %v owned by %+v (%v), want us (%d)", cw.Local, cw.Owner, cw.OwnerSource, os.Getpid())
		}
		if cw.Since.Before(start.Add(-time.Second)) || cw.Since.After(time.Now()) {
			t.Errorf("CLOSE_WAIT since %v: not within the test (%v to now)", cw.Since, start)
		}
	}
	slices.Sort(remotes)
	slices.Sort(clientPorts)
	if !slices.Equal(remotes, clientPorts) {
		t.Errorf("CLOSE_WAIT peers %v, want the clients %v", remotes, clientPorts)
	}

	for _, sv := range servers {
		sv.Close()
	}
	testutil.WaitFor(t, 5*time.Second, "CLOSE_WAIT to empty once we close", func() bool { return len(ours()) == 0 })
	want := ConnTotals{OpenedClient: 6, OpenedServer: 5, ClosedLocal: 5, ClosedRemote: 5, ClosedReset: 1, ConnectFailures: 1}
	var got ConnTotals
	testutil.WaitFor(t, 5*time.Second, "the namespace's counters", func() bool {
		totals, err := c.tr.ConnTotals()
		if err != nil {
			t.Fatal(err)
		}
		got = totals[netns]
		return got == want
	})
	if got != want {
		t.Errorf("namespace counters %+v, want %+v", got, want)
	}

	// the ring: the listeners' starts and ends; nothing per transition of
	// a connection (nor accept: TestListenerAccepts)
	for _, ev := range c.snapshot(port) {
		if ev.Kind == StateChange && ev.New != tcpstate.Listen && ev.Old != tcpstate.Listen {
			t.Errorf("a connection's transition reached the ring: %s", transition(ev))
		}
	}
	checkNoLoss(t, c.tr)
}

// Without Aggregate nothing is counted in the kernel: trace and record
// pay no map update per transition for an exporter that is not there.
func TestNoAggregateByDefault(t *testing.T) {
	c := startTracer(t, Options{})
	ln := testutil.PlainListener(t)
	cl, sv := testutil.Pair(t, ln)
	cl.Close()
	c.waitEvents(t, testutil.Port(ln), 4)
	sv.Close()
	totals, err := c.tr.ConnTotals()
	if err != nil {
		t.Fatal(err)
	}
	if len(totals) != 0 {
		t.Errorf("counted without Aggregate: totals %v", totals)
	}
}

// Under Aggregate an accept adds to its listener's counts in the kernel
// instead of ringing an event: the accepts, each wait in its bucket, the
// last accept's time and who made it, keyed by the listener's inode as
// sock_diag gives it; and the counts leave with the listener.
func TestListenerAccepts(t *testing.T) {
	c := startTracer(t, Options{Aggregate: true, Backlog: true})
	checkHooks(t, c.tr)
	ln := testutil.PlainListener(t)
	port := testutil.Port(ln)
	netns, err := snapshot.CurrentNetns()
	if err != nil {
		t.Fatal(err)
	}
	key := AcceptKey{Netns: netns, Port: port, Inode: socketInode(t, ln)}

	for range 3 { // accepted at once
		cl, sv := testutil.Pair(t, ln)
		cl.Close()
		sv.Close()
	}
	// one left in the queue for at least slow: its handshake was done
	// when Dial returned
	const slow = 60 * time.Millisecond
	cl, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	queued := time.Now()
	time.Sleep(slow)
	sv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	accepted := time.Now()
	defer sv.Close()

	// the programs ran in the accept() calls: their counts are there now
	all, err := c.tr.ListenerAccepts()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := all[key]
	if !ok {
		t.Fatalf("no accept counts for %+v: %v", key, all)
	}
	var waits, atLeastSlow uint64
	for i, n := range got.Waits {
		waits += n
		if i == len(AcceptWaitBuckets) || AcceptWaitBuckets[i] >= slow {
			atLeastSlow += n
		}
	}
	if got.Accepts != 4 || waits != 4 || atLeastSlow != 1 {
		t.Errorf("%d accepts, %d waits, %d of them over %v; want 4, 4, 1 (waits %v)", got.Accepts, waits, atLeastSlow, slow, got.Waits)
	}
	if got.WaitSum < slow || got.WaitSum > accepted.Sub(queued)+time.Second {
		t.Errorf("wait sum %v, want at least the queued one's %v", got.WaitSum, slow)
	}
	if got.Last.Before(queued) || got.Last.After(time.Now()) {
		t.Errorf("last accept at %v, want between %v and now", got.Last, queued)
	}
	if got.Acceptor != uint32(os.Getpid()) {
		t.Errorf("acceptor %d, want us (%d)", got.Acceptor, os.Getpid())
	}

	ln.Close()
	// the ring keeps order: once the listener's end is read, an accept
	// rung before it would have been too
	testutil.WaitFor(t, 5*time.Second, "the listener's end in the ring", func() bool {
		return slices.ContainsFunc(c.snapshot(port), func(ev Event) bool {
			return ev.Kind == StateChange && ev.Old == tcpstate.Listen && ev.New == tcpstate.Close
		})
	})
	for _, ev := range c.snapshot(port) {
		if ev.Kind == Accept {
			t.Errorf("an accept reached the ring: %s", transition(ev))
		}
	}
	testutil.WaitFor(t, 5*time.Second, "the closed listener's counts to go", func() bool {
		all, err := c.tr.ListenerAccepts()
		if err != nil {
			t.Fatal(err)
		}
		_, ok := all[key]
		return !ok
	})
	checkNoLoss(t, c.tr)
}

// The accept-wait buckets the programs count into rise strictly: a bound
// left zero (C given more buckets than Go lists) would take every wait.
func TestAcceptWaitBuckets(t *testing.T) {
	for i, b := range AcceptWaitBuckets {
		if b <= 0 || i > 0 && b <= AcceptWaitBuckets[i-1] {
			t.Fatalf("AcceptWaitBuckets %v: bound %d is not above the one before", AcceptWaitBuckets, i)
		}
	}
}
