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
)

// Under Aggregate the kernel counts a namespace's connections and keeps
// the sockets in CLOSE_WAIT, and the ring carries no per-transition
// record. In a namespace of its own, so that every count is exact: five
// connections its clients close first (the server's ends sit in
// CLOSE_WAIT, owned by us, until we close them) and one refused connect.
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

	ours := func() []CloseWait {
		cws, err := c.tr.CloseWaits()
		if err != nil {
			t.Fatal(err)
		}
		return slices.DeleteFunc(cws, func(cw CloseWait) bool { return cw.Netns != netns })
	}
	var cws []CloseWait
	testutil.WaitFor(t, 5*time.Second, "5 sockets in CLOSE_WAIT", func() bool { cws = ours(); return len(cws) == 5 })
	var remotes []uint16
	for _, cw := range cws {
		remotes = append(remotes, cw.Remote.Port())
		if cw.Local.Port() != port || cw.Local.Addr().String() != "127.0.0.1" {
			t.Errorf("CLOSE_WAIT socket %v -> %v: want the server's end, local 127.0.0.1:%d", cw.Local, cw.Remote, port)
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

	// the ring: the listeners' starts and ends, and accepts; nothing per
	// transition of a connection
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
	cws, err := c.tr.CloseWaits()
	if err != nil {
		t.Fatal(err)
	}
	if len(totals) != 0 || len(cws) != 0 {
		t.Errorf("counted without Aggregate: totals %v, CLOSE_WAIT %v", totals, cws)
	}
}
