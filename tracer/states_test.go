package tracer

import (
	"io"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/snapshot"
)

// The iterator counts a namespace's sockets by state as sock_diag reports
// them, timewait socks by their substate (an orphan that timed out of
// FIN_WAIT2 is FIN-WAIT-2 to ss) included: in a namespace of its own the
// test makes listeners and connections in five states, and the counts
// equal both what it made and a dump of that namespace.
func TestStateCounter(t *testing.T) {
	testutil.RequireRoot(t)
	c, err := NewStateCounter()
	if err != nil {
		t.Fatalf("this kernel has BPF iterators (5.9+): %v", err)
	}
	defer c.Close()
	ns := testutil.NamedNetns(t)
	want := map[tcpstate.State]int{
		tcpstate.Listen:      2,
		tcpstate.Established: 2 * 3,
		tcpstate.CloseWait:   2,
		tcpstate.FinWait2:    2, // the closed clients of the CLOSE_WAIT servers, orphans
		tcpstate.TimeWait:    1,
	}
	var got [tcpstate.Max]int
	testutil.InNetns(t, ns, func() {
		ln := testutil.PlainListener(t)
		testutil.Listen(t, "tcp6", "[::1]:0")
		for range 3 {
			testutil.Pair(t, ln)
		}
		for range 2 {
			cl, sv := testutil.Pair(t, ln)
			cl.Close()
			if _, err := sv.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("reading the closed client: %v, want EOF", err)
			}
		}
		// the client closes first and keeps TIME_WAIT; the server's end
		// is gone once the client has acknowledged its FIN
		cl, sv := testutil.Pair(t, ln)
		cl.Close()
		if _, err := sv.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("reading the closed client: %v, want EOF", err)
		}
		sv.Close()
		// (a FIN's ACK may be delayed: FIN_WAIT1 until it comes)
		testutil.WaitFor(t, 5*time.Second, "the closed clients past FIN_WAIT1, the closing pair in TIME_WAIT", func() bool {
			counts, err := c.Count()
			if err != nil {
				t.Fatal(err)
			}
			got = counts
			return counts[tcpstate.TimeWait] == want[tcpstate.TimeWait] && counts[tcpstate.LastAck] == 0 && counts[tcpstate.FinWait1] == 0
		})
	})
	for s := tcpstate.State(0); s < tcpstate.Max; s++ {
		if got[s] != want[s] {
			t.Errorf("%v: the iterator counted %d, the test made %d", s, got[s], want[s])
		}
	}

	var st unix.Stat_t
	if err := unix.Stat(ns, &st); err != nil {
		t.Fatal(err)
	}
	res, err := snapshot.Dump(t.Context(), snapshot.Options{TCP: true, Netns: []uint32{uint32(st.Ino)}})
	if err != nil {
		t.Fatal(err)
	}
	var dumped [tcpstate.Max]int
	for _, s := range res.Sockets {
		if s.Netns == uint32(st.Ino) && s.State.Known() {
			dumped[s.State]++
		}
	}
	if dumped != got {
		t.Errorf("the iterator counted %v, a sock_diag dump %v", got, dumped)
	}
}
