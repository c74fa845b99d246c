package snapshot

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// The fixtures in testdata/ are real sock_diag answers, captured with
//
//	go test ./snapshot -run TestDiagFixtures -update
//
// in a private network namespace holding only the sockets captureScenario
// makes, so they leak nothing of the host they were made on. Each NAME.nl
// is the concatenated datagrams of one dump; NAME.golden is how decoding
// renders them.
var update = flag.Bool("update", false, "recapture testdata/*.nl from the kernel and rewrite the .golden files")

// fixtureQueries are the dumps captured, by file name.
var fixtureQueries = []struct {
	name string
	q    query
}{
	{"tcp4", query{TCP, unix.AF_INET}},
	{"tcp6", query{TCP, unix.AF_INET6}},
	{"udp4", query{UDP, unix.AF_INET}},
	{"udp6", query{UDP, unix.AF_INET6}},
	{"unix", query{Unix, unix.AF_UNIX}},
}

var fixtureOpts = Options{States: tcpstate.All, Info: true}

// decodeFixture splits and decodes one captured dump.
func decodeFixture(data []byte, q query) ([]Socket, error) {
	var out []Socket
	var a arena
	_, err := walkMessages(data, 0, q.module(), func(p []byte) error {
		var s Socket
		if err := q.decode(p, &s, &a); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// renderSocket prints every decoded field, one socket per line.
func renderSocket(s Socket) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v fam=%d %v local=%v remote=%v if=%d q=%d/%d uid=%d ino=%d cookie=%d cg=%d",
		s.Protocol, s.Family, s.State, s.Local, s.Remote, s.Interface, s.RecvQ, s.SendQ, s.UID, s.Inode, s.Cookie, s.CgroupID)
	fmt.Fprintf(&b, " shut=%d tos=%d cong=%q v6only=%v mark=%d", s.Shutdown, s.TOS, s.Congestion, s.V6Only, s.Mark)
	if s.Protocol == Unix {
		fmt.Fprintf(&b, " type=%d path=%q peer=%d", s.UnixType, s.Path, s.PeerInode)
	}
	if s.Timer != nil {
		fmt.Fprintf(&b, " timer=%+v", *s.Timer)
	}
	if s.TCPInfo != nil {
		fmt.Fprintf(&b, " info=%+v", *s.TCPInfo)
	}
	if s.MemInfo != nil {
		fmt.Fprintf(&b, " mem=%+v", *s.MemInfo)
	}
	return b.String()
}

func TestDiagFixtures(t *testing.T) {
	if *update {
		captureFixtures(t)
	}
	states := map[string]map[tcpstate.State]bool{}
	for _, f := range fixtureQueries {
		data, err := os.ReadFile(filepath.Join("testdata", f.name+".nl"))
		if err != nil {
			t.Fatal(err)
		}
		socks, err := decodeFixture(data, f.q)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		var got bytes.Buffer
		states[f.name] = map[tcpstate.State]bool{}
		for _, s := range socks {
			fmt.Fprintln(&got, renderSocket(s))
			states[f.name][s.State] = true
			checkFixtureSocket(t, f.name, s)
		}
		golden := filepath.Join("testdata", f.name+".golden")
		if *update {
			if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s decodes differently from %s:\n got: %s\nwant: %s", f.name, golden, got.Bytes(), want)
		}
	}
	// The fixtures must keep covering the states users look for.
	for name, want := range map[string][]tcpstate.State{
		"tcp4": {tcpstate.Listen, tcpstate.Established, tcpstate.TimeWait, tcpstate.CloseWait, tcpstate.FinWait2},
		"tcp6": {tcpstate.Listen, tcpstate.Established, tcpstate.TimeWait, tcpstate.CloseWait},
		"udp4": {tcpstate.Close},
		"udp6": {tcpstate.Established},
		"unix": {tcpstate.Listen, tcpstate.Established, tcpstate.Close},
	} {
		for _, st := range want {
			if !states[name][st] {
				t.Errorf("fixture %s has no %v socket", name, st)
			}
		}
	}
}

// checkFixtureSocket holds the invariants any decoded socket keeps.
func checkFixtureSocket(t *testing.T, name string, s Socket) {
	t.Helper()
	full := s.Inode != 0
	switch {
	case s.Protocol == TCP && s.State == tcpstate.Established && s.TCPInfo == nil:
		t.Errorf("%s: ESTAB socket without tcp_info: %s", name, renderSocket(s))
	case s.Protocol == TCP && s.State == tcpstate.TimeWait && (full || s.Timer == nil || s.Timer.Kind != TimerTimeWait):
		t.Errorf("%s: TIME-WAIT must have inode 0 and a TIME-WAIT timer: %s", name, renderSocket(s))
	case s.Protocol != Unix && full && (s.MemInfo == nil || s.CgroupID == 0):
		t.Errorf("%s: full socket without meminfo or cgroup id: %s", name, renderSocket(s))
	case s.Protocol != Unix && s.Local.Addr().Is4() != (s.Family == unix.AF_INET):
		t.Errorf("%s: address family does not match %d: %s", name, s.Family, renderSocket(s))
	}
}

// captureFixtures builds the scenario in a fresh namespace and records the
// raw answers of each dump.
func captureFixtures(t *testing.T) {
	testutil.RequireRoot(t)
	path, ino := namedNetns(t)
	testutil.InNetns(t, path, func() { captureScenario(t) })

	c, err := openDiagIn(namespace{inode: ino, paths: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, f := range fixtureQueries {
		var raw bytes.Buffer
		c.tap = func(b []byte) { raw.Write(b) }
		var a arena
		if _, err := c.collect(context.Background(), f.q, fixtureOpts, ino, nil, &a); err != nil {
			t.Fatalf("capturing %s: %v", f.name, err)
		}
		if err := os.WriteFile(filepath.Join("testdata", f.name+".nl"), raw.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// captureScenario makes, in the current thread's namespace, one socket of
// every kind the decoders must handle.
func captureScenario(t *testing.T) {
	ln4 := listenOn(t, newSock(t, unix.AF_INET, unix.SOCK_STREAM), "127.0.0.1", 8)
	tcpScenario(t, ln4, "127.0.0.1")
	ln6 := listenOn(t, newSock(t, unix.AF_INET6, unix.SOCK_STREAM), "::", 8)
	tcpScenario(t, ln6, "::1")
	tcpScenario(t, ln6, "127.0.0.1") // v4-mapped

	// A full accept queue: backlog 1, two connections waiting.
	full := listenOn(t, newSock(t, unix.AF_INET, unix.SOCK_STREAM), "127.0.0.1", 1)
	fullAddr, _ := sockEnds(t, full)
	dialTCP(t, fullAddr)
	dialTCP(t, fullAddr)

	udp4 := newSock(t, unix.AF_INET, unix.SOCK_DGRAM)
	bindFD(t, udp4, "127.0.0.1")
	udp4Addr, _ := sockEnds(t, udp4)
	if err := unix.Sendto(newSock(t, unix.AF_INET, unix.SOCK_DGRAM), []byte("ping"), 0, sockaddrOf(udp4Addr)); err != nil {
		t.Fatal(err)
	}
	udp6a, udp6b := newSock(t, unix.AF_INET6, unix.SOCK_DGRAM), newSock(t, unix.AF_INET6, unix.SOCK_DGRAM)
	bindFD(t, udp6a, "::1")
	bindFD(t, udp6b, "::1")
	a, _ := sockEnds(t, udp6a)
	b, _ := sockEnds(t, udp6b)
	if unix.Connect(udp6a, sockaddrOf(b)) != nil || unix.Connect(udp6b, sockaddrOf(a)) != nil {
		t.Fatal("connecting UDP sockets failed")
	}

	ux, uxPath := newSock(t, unix.AF_UNIX, unix.SOCK_STREAM), filepath.Join(t.TempDir(), "fixture.sock")
	if err := unix.Bind(ux, unixSockaddr(uxPath)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ux, 4); err != nil {
		t.Fatal(err)
	}
	uxc := newSock(t, unix.AF_UNIX, unix.SOCK_STREAM)
	if err := unix.Connect(uxc, unixSockaddr(uxPath)); err != nil {
		t.Fatal(err)
	}
	abs := newSock(t, unix.AF_UNIX, unix.SOCK_SEQPACKET)
	if err := unix.Bind(abs, unixSockaddr("@socklife-fixture")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(abs, 2); err != nil {
		t.Fatal(err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(pair[0]); unix.Close(pair[1]) })
	unix.Write(pair[0], []byte("datagram"))
	dg := newSock(t, unix.AF_UNIX, unix.SOCK_DGRAM)
	if err := unix.Bind(dg, unixSockaddr(filepath.Join(t.TempDir(), "fixture.dgram"))); err != nil {
		t.Fatal(err)
	}
}

// tcpScenario makes, on the listener ln reached at host, an established
// connection with unread data, a CLOSE-WAIT / FIN-WAIT-2 pair and a
// TIME-WAIT.
func tcpScenario(t *testing.T, ln int, host string) {
	t.Helper()
	lnAddr, _ := sockEnds(t, ln)
	to := netip.AddrPortFrom(netip.MustParseAddr(host), lnAddr.Port())
	dial := func() (int, int) {
		c := dialTCP(t, to)
		return c, acceptFD(t, ln)
	}
	c, _ := dial()
	if _, err := unix.Write(c, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	c, s := dial()
	unix.Close(c) // the server end waits in CLOSE-WAIT, the client in FIN-WAIT-2
	waitTCPState(t, s, tcpstate.CloseWait)
	c, s = dial()
	unix.Close(c)
	waitTCPState(t, s, tcpstate.CloseWait)
	unix.Shutdown(s, unix.SHUT_WR)     // the client moves to TIME-WAIT...
	waitTCPState(t, s, tcpstate.Close) // ...once our FIN is acked
}

func waitTCPState(t *testing.T, fd int, want tcpstate.State) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, "socket state "+want.String(), func() bool {
		ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		return err == nil && tcpstate.State(ti.State) == want
	})
}
