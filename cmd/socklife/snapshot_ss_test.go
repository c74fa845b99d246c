package main

import (
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/ssfilter"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// The differential test of `socklife snapshot FILTER` against ss, over
// testutil's zoo of real TCP sockets on ports of the test's own
// (testutil.NewSSZoo): ss filter expressions run through both.

func decodeNDJSON(t *testing.T, out string) []render.SocketJSON {
	t.Helper()
	return jsonLines[render.SocketJSON](t, out)
}

// socklifeKeys runs `socklife snapshot flags --no-process -o ndjson args`
// in process and returns the zoo's sockets it listed, sorted, and its exit
// status.
func socklifeKeys(t *testing.T, z *testutil.SSZoo, flags string, args []string) ([]string, int, string) {
	t.Helper()
	stdout, stderr, code := runCLI(t, append([]string{"snapshot", flags, "--no-process", "-o", "ndjson", "--"}, args...)...)
	if code != 0 {
		return nil, code, stderr
	}
	var keys []string
	for _, s := range decodeNDJSON(t, stdout) {
		l, err1 := netip.ParseAddrPort(s.Local)
		r, err2 := netip.ParseAddrPort(s.Remote)
		m, err3 := tcpstate.ParseFilter([]string{s.State})
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("socklife printed %+v: %v %v %v", s, err1, err2, err3)
		}
		if z.Mine(l, r) {
			keys = append(keys, testutil.SSKey(l, r, tcpstate.State(bits.TrailingZeros32(uint32(m)))))
		}
	}
	slices.Sort(keys)
	return keys, 0, stderr
}

// ssCases are the examples, the state words, precedence, refused
// expressions, then generated ones; some as one argument, some as many.
func ssCases(z *testutil.SSZoo) [][]string {
	P := z.Port
	cases := [][]string{
		{"state", "established", fmt.Sprintf("( dport = :%d or sport = :%d )", P(0), P(0))},
		{"dst", "127.0.0.2"},
		{"exclude", "listening"},
		{"state", "listening", "state", "close-wait"},
		{"exclude", "time-wait", "exclude", "established"},
		{"state", "bucket"},
		{"state", "fin-wait-2", "or", "src", "127.0.0.1"},
		{"excl", "all"},
		{"state", "unknown"},
		{"sport", "gt", fmt.Sprintf(":%d", P(2)), "and", "not", "dst", "127.0.0.0/8"},
		{fmt.Sprintf("sport = :%d or sport = :%d and sport = :%d", P(0), P(1), P(1))},
		{fmt.Sprintf("not sport = :%d or sport = :%d", P(0), P(0))},
		{"src inet:127.0.0.1"},
		{"src inet6:[::ffff:127.0.0.1]"},
		{"not dst 0.0.0.0/8"},
		{"autobound or sport = :" + fmt.Sprint(P(6))},
		{"dev lo or dport = :" + fmt.Sprint(P(4))},
		// Refused by ss (and so exit status 2).
		{"(dport", "=", fmt.Sprintf(":%d", P(0)), ")"},
		{"sport=:80"},
		{"dport = :80 or"},
		{"( src 127.0.0.1"},
		{"src 127.0.0.1", "state", "established"},
		{"state", "nosuch"},
		{"sport = :nosuchport"},
		{"dst 10.0.0.256"},
	}
	// Fixed seed: the same expressions every run.
	g := testutil.NewSSGen(z.SSAtoms(), 7, 11)
	prefixes := [][]string{nil, nil, {"state", "established"}, {"exclude", "listening"}, {"state", "connected"}}
	for _, c := range g.Cases(40, prefixes, 0) {
		cases = append(cases, c.Args)
	}
	return cases
}

// TestSnapshotFilterAgainstSS runs each case through `socklife snapshot`
// and through the real ss, under -tan (all of them) and -tn and -tln (every
// third), and compares the zoo's sockets each lists.
func TestSnapshotFilterAgainstSS(t *testing.T) {
	testutil.RequireSS(t)
	// Ports 26000-32719: below the ephemeral range and above the ssfilter
	// package's zoo, whose test may run at the same time.
	z := testutil.NewSSZoo(t, 26000, 32720)
	all, code, stderr := socklifeKeys(t, z, "-tan", nil)
	if code != 0 || len(all) < 20 {
		t.Fatalf("socklife snapshot -tan: exit %d, %d zoo sockets: %s", code, len(all), stderr)
	}
	variants := []struct {
		flags string
		mask  uint32 // what the flags give ssfilter.StateMask
	}{{"-tan", ssfilter.StatesAll}, {"-tn", 0}, {"-tln", ssfilter.StatesListening}}
	var compared, refused, partial, disagree int
	for i, args := range ssCases(z) {
		for _, v := range variants {
			if v.flags != "-tan" && i%3 != 0 {
				continue
			}
			oneState := tcpstate.State(0)
			if f, err := ssfilter.Parse(args, nil); err == nil {
				if m := f.StateMask(v.mask); bits.OnesCount32(m) == 1 {
					oneState = tcpstate.State(bits.TrailingZeros32(m))
				}
			}
			want, ok, serr := z.SS(t, v.flags, args, oneState)
			got, code, stderr := socklifeKeys(t, z, v.flags, args)
			if !ok {
				refused++
				if code != 2 || strings.Count(stderr, "\n") != 1 {
					disagree++
					t.Errorf("%s %q: ss refused it (%s); socklife exit %d, stderr %q, want 2 and one line",
						v.flags, args, testutil.FirstLine(serr), code, stderr)
				}
				break
			}
			compared++
			if len(want) > 0 && len(want) < len(all) {
				partial++
			}
			if code != 0 || !slices.Equal(got, want) {
				disagree++
				t.Errorf("%s %q: socklife (exit %d, %s):\n %q\nss:\n %q", v.flags, args, code, stderr, got, want)
			}
		}
	}
	t.Logf("%d runs compared with ss (%d selecting some but not all of the %d zoo sockets), %d refused by both; %d disagreements",
		compared, partial, len(all), refused, disagree)
	if compared < 30 {
		t.Errorf("only %d runs compared", compared)
	}
}
