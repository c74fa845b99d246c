package tracer

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"io"
	"net/netip"
	"os"
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
// FIN_WAIT2 is FIN-WAIT-2 to ss) included, and names those in CLOSE_WAIT
// with what the tracer's programs saw: in a namespace of its own the test
// makes listeners and connections in five states, and the tally equals
// both what it made and a dump of that namespace; the CLOSE_WAIT sockets
// are ours since the test made them, in the namespace and cgroup the dump
// gives them.
func TestCensus(t *testing.T) {
	start := time.Now()
	// a map of sockets not of the object's size: the census reads the
	// tracer's, whatever its size
	tr := startTracer(t, Options{Aggregate: true, MaxSockets: 1 << 12}).tr
	c, err := tr.NewCensus()
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
	var closeWaits []ends
	testutil.InNetns(t, ns, func() {
		ln := testutil.PlainListener(t)
		testutil.Listen(t, "tcp6", "[::1]:0")
		for range 3 {
			testutil.Pair(t, ln)
		}
		for range 2 {
			cl, sv := testutil.Pair(t, ln)
			closeWaits = append(closeWaits, ends{Local: netip.MustParseAddrPort(sv.LocalAddr().String()), Remote: netip.MustParseAddrPort(sv.RemoteAddr().String())})
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
	var gotConns []ends
	for _, cw := range got.CloseWait {
		gotConns = append(gotConns, ends{Local: cw.Local, Remote: cw.Remote})
	}
	sortConns := func(cs []ends) {
		slices.SortFunc(cs, func(a, b ends) int { return cmp.Compare(a.Remote.Port(), b.Remote.Port()) })
	}
	sortConns(gotConns)
	sortConns(closeWaits)
	if !slices.Equal(gotConns, closeWaits) {
		t.Errorf("the iterator's CLOSE_WAIT sockets %v, the test's %v", gotConns, closeWaits)
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
	// what the programs knew of each CLOSE_WAIT socket: a child of our
	// listener, not accepted by an accept the programs saw, so our
	// listener's owner; since it entered CLOSE_WAIT in the test
	cgroups := map[ends]uint64{}
	for _, s := range res.Sockets {
		if s.State == tcpstate.CloseWait {
			cgroups[ends{Local: unmapped(s.Local), Remote: unmapped(s.Remote)}] = s.CgroupID
		}
	}
	for _, cw := range got.CloseWait {
		if cw.OwnerSource == OwnerUnknown || cw.Owner.PID != uint32(os.Getpid()) {
			t.Errorf("CLOSE_WAIT %v: owner %+v (%v), want us (%d)", cw.Local, cw.Owner, cw.OwnerSource, os.Getpid())
		}
		if cw.Since.Before(start) || cw.Since.After(time.Now()) {
			t.Errorf("CLOSE_WAIT %v since %v: not within the test (%v to now)", cw.Local, cw.Since, start)
		}
		if cw.Netns != uint32(st.Ino) {
			t.Errorf("CLOSE_WAIT %v in netns %d, want %d", cw.Local, cw.Netns, st.Ino)
		}
		if want, ok := cgroups[ends{Local: cw.Local, Remote: cw.Remote}]; !ok || cw.SockCgroupID != want {
			t.Errorf("CLOSE_WAIT %v: cgroup %d, the dump's %d (found: %v)", cw.Local, cw.SockCgroupID, want, ok)
		}
	}
}

func unmapped(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// The iterator's stream: a byte a socket, a record after each CLOSE_WAIT.
// A record cut short is an error, never a socket made up of what is left;
// states sock_diag does not name are not counted; an owner and a since
// the programs did not know stay unknown, not pid 0 and 1970.
func TestReadTally(t *testing.T) {
	c := &Census{clock: newClock()}
	record := func(local, remote string, w socklifeCloseWait) []byte {
		l, r := netip.MustParseAddrPort(local), netip.MustParseAddrPort(remote)
		w.Family, w.Sport, w.Dport, w.Saddr, w.Daddr = unix.AF_INET, l.Port(), r.Port(), l.Addr().As16(), r.Addr().As16()
		var b bytes.Buffer
		if err := binary.Write(&b, binary.NativeEndian, &w); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	var known socklifeCloseWait
	known.Owner.Tgid, known.Owner.CgroupId, known.OwnerFlag = 42, 7, uint8(socklifeEventFlagFLAG_OWNER_TASK)
	copy(known.Owner.Comm[:], "nginx")
	known.SinceNs, known.SockCgroup, known.Netns = 1e9, 9, 4026531840
	stream := append([]byte{byte(tcpstate.Listen), byte(tcpstate.Established), 0, byte(tcpstate.Max)}, byte(tcpstate.CloseWait))
	stream = append(stream, record("127.0.0.1:80", "127.0.0.1:5000", known)...)
	stream = append(stream, byte(tcpstate.CloseWait))
	stream = append(stream, record("127.0.0.1:80", "127.0.0.1:5001", socklifeCloseWait{Netns: 4026531840})...)
	stream = append(stream, byte(tcpstate.TimeWait))

	var got Tally
	if err := c.readTally(bufio.NewReader(bytes.NewReader(stream)), &got); err != nil {
		t.Fatal(err)
	}
	var want Tally
	want.States[tcpstate.Listen], want.States[tcpstate.Established], want.States[tcpstate.CloseWait], want.States[tcpstate.TimeWait] = 1, 1, 2, 1
	want.CloseWait = []CloseWait{
		{Netns: 4026531840, Family: unix.AF_INET, Local: netip.MustParseAddrPort("127.0.0.1:80"), Remote: netip.MustParseAddrPort("127.0.0.1:5000"),
			Owner: Task{PID: 42, Comm: "nginx", CgroupID: 7}, OwnerSource: OwnerTask, Since: c.clock.wall(1e9), SockCgroupID: 9},
		{Netns: 4026531840, Family: unix.AF_INET, Local: netip.MustParseAddrPort("127.0.0.1:80"), Remote: netip.MustParseAddrPort("127.0.0.1:5001")},
	}
	if got.States != want.States || !slices.Equal(got.CloseWait, want.CloseWait) {
		t.Errorf("readTally = %+v, want %+v", got, want)
	}

	full := record("127.0.0.1:80", "127.0.0.1:5000", known)
	cut := append([]byte{byte(tcpstate.CloseWait)}, full[:len(full)-1]...)
	if err := c.readTally(bufio.NewReader(bytes.NewReader(cut)), &Tally{}); err == nil {
		t.Error("a CLOSE_WAIT record cut short: no error")
	}
}

// ends are a connection's two ends.
type ends struct{ Local, Remote netip.AddrPort }
