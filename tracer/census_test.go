package tracer

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/snapshot"
)

// The iterator counts a namespace's sockets by state as sock_diag reports
// them, timewait socks by their substate (an orphan that timed out of
// FIN_WAIT2 is FIN-WAIT-2 to ss) included, and names those in CLOSE_WAIT:
// in a namespace of its own the test makes listeners and connections in
// five states, and the tally equals both what it made and a dump of that
// namespace.
func TestCensus(t *testing.T) {
	testutil.RequireRoot(t)
	c, err := NewCensus()
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
	var got Tally
	var closeWaits []Conn
	testutil.InNetns(t, ns, func() {
		ln := testutil.PlainListener(t)
		testutil.Listen(t, "tcp6", "[::1]:0")
		for range 3 {
			testutil.Pair(t, ln)
		}
		for range 2 {
			cl, sv := testutil.Pair(t, ln)
			closeWaits = append(closeWaits, Conn{Local: netip.MustParseAddrPort(sv.LocalAddr().String()), Remote: netip.MustParseAddrPort(sv.RemoteAddr().String())})
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
		// A FIN's ACK may be delayed: FIN_WAIT1 until it comes. And the
		// iterator takes the hash a bucket at a time, skipping a socket
		// unhashed since: a closed client that becomes a timewait sock
		// (FIN_WAIT2) during a pass is in neither form in it. So passes
		// are taken until one counts what the test made, and the last is
		// judged below.
		var wantStates [tcpstate.Max]int
		for s, n := range want {
			wantStates[s] = n
		}
		deadline := time.Now().Add(testutil.Scaled(5 * time.Second))
		for {
			if got, err = c.Take(); err != nil {
				t.Fatal(err)
			}
			if got.States == wantStates || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	for s := tcpstate.State(0); s < tcpstate.Max; s++ {
		if got.States[s] != want[s] {
			t.Errorf("%v: the iterator counted %d, the test made %d", s, got.States[s], want[s])
		}
	}
	sortConns := func(cs []Conn) {
		slices.SortFunc(cs, func(a, b Conn) int { return cmp.Compare(a.Remote.Port(), b.Remote.Port()) })
	}
	sortConns(got.CloseWait)
	sortConns(closeWaits)
	if !slices.Equal(got.CloseWait, closeWaits) {
		t.Errorf("the iterator's CLOSE_WAIT sockets %v, the test's %v", got.CloseWait, closeWaits)
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
	if dumped != got.States {
		t.Errorf("the iterator counted %v, a sock_diag dump %v", got, dumped)
	}
}

// The iterator's stream: a byte a socket, a tuple after each CLOSE_WAIT.
// A tuple cut short is an error, never a socket made up of what is left;
// states sock_diag does not name are not counted.
func TestReadTally(t *testing.T) {
	tuple := func(local, remote string) []byte {
		l, r := netip.MustParseAddrPort(local), netip.MustParseAddrPort(remote)
		tu := socklifeTuple{Family: unix.AF_INET, Sport: l.Port(), Dport: r.Port(),
			Saddr: l.Addr().As16(), Daddr: r.Addr().As16()}
		var b bytes.Buffer
		if err := binary.Write(&b, binary.NativeEndian, &tu); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	cw := tuple("127.0.0.1:80", "127.0.0.1:5000")
	stream := append([]byte{byte(tcpstate.Listen), byte(tcpstate.Established), 0, byte(tcpstate.Max)}, byte(tcpstate.CloseWait))
	stream = append(stream, cw...)
	stream = append(stream, byte(tcpstate.TimeWait))

	var got Tally
	if err := readTally(bufio.NewReader(bytes.NewReader(stream)), &got); err != nil {
		t.Fatal(err)
	}
	var want Tally
	want.States[tcpstate.Listen], want.States[tcpstate.Established], want.States[tcpstate.CloseWait], want.States[tcpstate.TimeWait] = 1, 1, 1, 1
	want.CloseWait = []Conn{{Local: netip.MustParseAddrPort("127.0.0.1:80"), Remote: netip.MustParseAddrPort("127.0.0.1:5000")}}
	if got.States != want.States || !slices.Equal(got.CloseWait, want.CloseWait) {
		t.Errorf("readTally = %+v, want %+v", got, want)
	}

	cut := append([]byte{byte(tcpstate.CloseWait)}, cw[:len(cw)-1]...)
	if err := readTally(bufio.NewReader(bytes.NewReader(cut)), &Tally{}); err == nil {
		t.Error("a CLOSE_WAIT tuple cut short: no error")
	}
}
