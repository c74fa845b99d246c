package snapshot

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// ss is the oracle: for every socket that held still while it ran, Dump and
// ss must agree on tuple, state, Recv-Q and Send-Q. ss runs with -e as well
// as -tuanH so that each line carries the socket cookie ("sk:1a2b"): on a
// busy host a tuple is reused within milliseconds, a cookie never.

// ssRecord is what both sides print for one socket. Unspecified addresses
// are "*" because ss prints some of them that way.
type ssRecord struct {
	netid, local, remote string
	state                string
	rq, wq               uint64
}

func (r ssRecord) tuple() string { return r.netid + " " + r.local + " " + r.remote }

func ssEndpoint(ap netip.AddrPort) string {
	host := "*"
	if !ap.Addr().IsUnspecified() {
		host = ap.Addr().String()
	}
	return host + ":" + strconv.Itoa(int(ap.Port()))
}

// dumpTable is Dump's TCP and UDP sockets by cookie.
func dumpTable(t *testing.T) map[uint64]ssRecord {
	t.Helper()
	table := map[uint64]ssRecord{}
	for _, s := range mustDump(t, Options{TCP: true, UDP: true}).Sockets {
		table[s.Cookie] = ssRecord{s.Protocol.String(), ssEndpoint(s.Local), ssEndpoint(s.Remote),
			s.State.String(), uint64(s.RecvQ), uint64(s.SendQ)}
	}
	return table
}

// parseSSEndpoint reads one address column of ss: "0.0.0.0:22", "*:53",
// "[::]:22", "[::ffff:127.0.0.1]:80", "127.0.0.53%lo:53",
// "[fe80::1]%eth0:123", "0.0.0.0:*".
func parseSSEndpoint(s string) (string, error) {
	ap, err := testutil.ParseSSHost(s)
	if err != nil {
		return "", err
	}
	if ap.Addr().IsUnspecified() {
		return fmt.Sprintf("*:%d", ap.Port()), nil
	}
	return fmt.Sprintf("%s:%d", ap.Addr().WithZone(""), ap.Port()), nil
}

// parseSS reads `ss -tuanHe` into records by cookie.
func parseSS(out string) (map[uint64]ssRecord, error) {
	table := map[uint64]ssRecord{}
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 6 {
			return nil, fmt.Errorf("short ss line %q", line)
		}
		local, err := parseSSEndpoint(f[4])
		if err != nil {
			return nil, err
		}
		remote, err := parseSSEndpoint(f[5])
		if err != nil {
			return nil, err
		}
		rq, err1 := strconv.ParseUint(f[2], 10, 32)
		wq, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad queues in ss line %q", line)
		}
		cookie, ok := uint64(0), false
		for _, x := range f[6:] {
			if hex, found := strings.CutPrefix(x, "sk:"); found {
				cookie, err = strconv.ParseUint(hex, 16, 64)
				ok = err == nil
			}
		}
		if !ok {
			return nil, fmt.Errorf("no socket cookie (sk:) in ss line %q", line)
		}
		table[cookie] = ssRecord{f[0], local, remote, f[1], rq, wq}
	}
	return table, nil
}

func TestParseSSEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:22":            "*:22",
		"*:53":                  "*:53",
		"[::]:22":               "*:22",
		"[::]:*":                "*:0",
		"0.0.0.0:*":             "*:0",
		"[::ffff:127.0.0.1]:80": "::ffff:127.0.0.1:80",
		"127.0.0.53%lo:53":      "127.0.0.53:53",
		"[fe80::1]%eth0:123":    "fe80::1:123",
		"*%eth0:68":             "*:68",
		"192.0.2.2:41966":       "192.0.2.2:41966",
	} {
		got, err := parseSSEndpoint(in)
		if err != nil || got != want {
			t.Errorf("parseSSEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "127.0.0.1", "127.0.0.1:http", "[::1]", "nohost:22"} {
		if got, err := parseSSEndpoint(bad); err == nil {
			t.Errorf("parseSSEndpoint(%q) = %q, want an error", bad, got)
		}
	}
}

func TestDumpAgreesWithSS(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("ss"); err != nil {
		t.Fatalf("the ss oracle needs iproute2's ss: %v", err)
	}
	// Sockets of every kind ss shows, so the comparison is never empty.
	ln4, _ := listenTCP(t, unix.AF_INET, "127.0.0.1", 3)
	ln6, _ := listenTCP(t, unix.AF_INET6, "::", 5)
	tcpPair(t, ln4)
	c, s := tcpPair(t, ln6)
	unix.Write(c, make([]byte, 321)) // unread on the server side: Recv-Q 321
	unix.Write(s, make([]byte, 7))
	udp := newSock(t, unix.AF_INET, unix.SOCK_DGRAM)
	bindFD(t, udp, "127.0.0.1")
	waitTCPRecvQ(t, ln6, s, 321)

	// A socket that changed and changed back while ss ran (an accept queue
	// of another test) looks stable but is not: only a disagreement that
	// survives three rounds is a bug.
	var persistent map[uint64]string
	for round := 0; round < 3 && (round == 0 || len(persistent) > 0); round++ {
		found, stable := compareWithSS(t)
		if stable < 6 {
			t.Fatalf("only %d sockets held still across the two dumps; the comparison proves little", stable)
		}
		if round == 0 {
			persistent = found
			t.Logf("%d sockets compared", stable)
			continue
		}
		for cookie := range persistent {
			if _, again := found[cookie]; !again {
				delete(persistent, cookie)
			}
		}
	}
	for _, msg := range persistent {
		t.Error(msg)
	}
}

// compareWithSS dumps, runs ss, dumps again, and returns the disagreements
// by cookie and how many sockets were the same in both dumps.
func compareWithSS(t *testing.T) (mismatches map[uint64]string, stable int) {
	t.Helper()
	a := dumpTable(t)
	out, err := exec.Command("ss", "-tuanHe").Output()
	if err != nil {
		t.Fatalf("ss -tuanHe: %v", err)
	}
	b := dumpTable(t)
	ss, err := parseSS(string(out))
	if err != nil {
		t.Fatal(err)
	}
	mismatches = map[uint64]string{}
	stableTuples := map[string]uint64{}
	for cookie, ra := range a {
		if rb, ok := b[cookie]; !ok || rb != ra {
			continue
		}
		stable++
		stableTuples[ra.tuple()] = cookie
		if rs, ok := ss[cookie]; !ok || rs != ra {
			mismatches[cookie] = fmt.Sprintf("socket %x: Dump says %+v (twice), ss says %+v", cookie, ra, rs)
		}
	}
	// The other way round: ss must not see, on a tuple that held still in
	// both dumps, a socket the dumps did not list.
	for cookie, rs := range ss {
		if c, ok := stableTuples[rs.tuple()]; ok && c != cookie {
			if _, inA := a[cookie]; !inA {
				mismatches[cookie] = fmt.Sprintf("socket %x: ss lists %+v, which Dump did not", cookie, rs)
			}
		}
	}
	return mismatches, stable
}

// waitTCPRecvQ waits until the server end s has n unread bytes.
func waitTCPRecvQ(t *testing.T, ln, s int, n uint32) {
	t.Helper()
	l, r := sockEnds(t, s)
	waitForSocket(t, Options{TCP: true, States: tcpstate.Of(tcpstate.Established)}, "data in Recv-Q",
		func(x *Socket) bool { return tuple(TCP, l, r)(x) && x.RecvQ == n })
}
