package ssfilter

import (
	"fmt"
	"math/bits"
	"os/exec"
	"slices"
	"testing"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// zooAtoms are testutil's atoms over the zoo (SSZoo.SSAtoms), and the
// cgroup our sockets are in (the test's), by absolute path and with a
// trailing slash.
func zooAtoms(z *testutil.SSZoo) []string {
	if mnt, err := cgroup2Mount(); err == nil {
		return z.SSAtoms("cgroup "+mnt, "cgroup != "+mnt+"/")
	}
	return z.SSAtoms()
}

// statePrefixes are whole arguments put before the expression.
var statePrefixes = [][]string{
	nil, nil, nil,
	{"state", "established"}, {"state", "connected"}, {"exclude", "listening"},
	{"state", "bucket"}, {"state", "listening", "state", "close-wait"},
	{"exclude", "time-wait", "exclude", "established"}, {"state", "synchronized"},
	{"state", "big"}, {"state", "fin-wait-2"}, {"excl", "all"}, {"state", "all"},
	{"state", "time-wait"}, {"state", "Listening"},
}

// zooCases: the examples, precedence probes, then generated ones.
func zooCases(z *testutil.SSZoo) []testutil.SSCase {
	P := z.Port
	fixed := [][]string{
		{"state", "established", fmt.Sprintf("( dport = :%d or sport = :%d )", P(0), P(0))},
		{"dst 127.0.0.2"},
		{fmt.Sprintf("( dport = :%d )", P(3))},
		{"exclude", "listening"},
		{"sport", "gt", fmt.Sprintf(":%d", P(2)), "and", "not", "dst", "127.0.0.0/8"},
		{fmt.Sprintf("sport = :%d or sport = :%d and sport = :%d", P(0), P(1), P(1))},
		{fmt.Sprintf("sport = :%d and sport = :%d or sport = :%d", P(0), P(1), P(2))},
		{fmt.Sprintf("not sport = :%d or sport = :%d", P(0), P(0))},
		{fmt.Sprintf("not sport = :%d and sport = :%d", P(0), P(0))},
		{fmt.Sprintf("sport = :%d or sport = :%d sport = :%d", P(0), P(1), P(1))},
		{"src inet:127.0.0.1"},
		{"src inet6:[::ffff:127.0.0.1]"},
		{"src inet:* or src inet6:*"},
		{"dst 0.0.0.0/0"},
		{"not dst 0.0.0.0/8"},
		{"sport > *"},
		{"autobound"},
		{"exclude", "all"},
		{""},
		{"state", "established", "dst 127.0.0.1", "or", "sport", fmt.Sprintf(":%d", P(3))},
	}
	var cs []testutil.SSCase
	for _, a := range fixed {
		cs = append(cs, testutil.SSCase{Args: a, Valid: true})
	}
	// Fixed seed: the same expressions every run; every fifth broken.
	g := testutil.NewSSGen(zooAtoms(z), 1, 2)
	return append(cs, g.Cases(160, statePrefixes, 5)...)
}

// TestAgainstSS runs every case through the real ss and through Parse and
// Filter.Match over the same sockets, and each expression's bytecode
// through the kernel.
func TestAgainstSS(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("no ss")
	}
	z := newZoo(t)
	socks := zooSockets(t, z)
	if len(socks) < 20 {
		t.Fatalf("zoo has %d sockets", len(socks))
	}
	var accepted, refused, compiled, partial int
	// Most cases run as ss -tan; every third also as -tn and -tln, where
	// the state words fall back to other masks.
	variants := []struct {
		flags string
		mask  uint32
	}{{"-tan", StatesAll}, {"-tn", 0}, {"-tln", StatesListening}}
	for i, c := range zooCases(z) {
		f, perr := Parse(c.Args, nil)
		for _, v := range variants {
			if v.flags != "-tan" && i%3 != 0 {
				continue
			}
			oneState := uint8(0)
			if f != nil {
				if m := f.StateMask(v.mask); bits.OnesCount32(m) == 1 {
					oneState = uint8(bits.TrailingZeros32(m))
				}
			}
			got, ok, serr := z.SS(t, v.flags, c.Args, tcpstate.State(oneState))
			if ok != (perr == nil) {
				t.Errorf("ss %s %q: ss ok=%v (%s), Parse error %v", v.flags, c.Args, ok, testutil.FirstLine(serr), perr)
				break
			}
			if !ok {
				refused++
				break
			}
			accepted++
			want := keysOf(socks, func(s *Sock) bool { return f.Match(s, v.mask) })
			if len(want) > 0 && len(want) < len(socks) {
				partial++
			}
			if !slices.Equal(got, want) {
				t.Errorf("ss %s %q (parsed %s):\n ss:    %q\n Match: %q", v.flags, c.Args, f.Expr, got, want)
			}
		}
		if perr != nil {
			continue
		}
		if bc, ok := f.Expr.Bytecode(); ok && bc != nil {
			compiled++
			checkKernel(t, z, socks, f.Expr.String(), bc)
		}
	}
	t.Logf("%d ss runs accepted (%d selecting some but not all of the %d zoo sockets), %d refused (both by ss and Parse); %d programs run in the kernel",
		accepted, partial, len(socks), refused, compiled)
	if accepted < 100 {
		t.Errorf("only %d accepted ss runs compared", accepted)
	}
}

// checkKernel sends bc with a dump and compares what the kernel returns
// with RunBytecode over the unfiltered dump.
func checkKernel(t *testing.T, z *testutil.SSZoo, socks []Sock, what string, bc []byte) {
	t.Helper()
	if err := Audit(bc); err != nil {
		t.Errorf("%s: %x: %v", what, bc, err)
		return
	}
	ks, err := diagDump(bc)
	if err != nil {
		t.Errorf("%s: kernel refused %x: %v", what, bc, err)
		return
	}
	var got []string
	for i := range ks {
		if z.Mine(ks[i].Local, ks[i].Remote) {
			got = append(got, sockKey(&ks[i]))
		}
	}
	slices.Sort(got)
	want := keysOf(socks, func(s *Sock) bool { return RunBytecode(bc, s) })
	if !slices.Equal(got, want) {
		t.Errorf("%s: bytecode %x:\n kernel:      %q\n RunBytecode: %q", what, bc, got, want)
	}
}

// TestBytecodeKernel runs every atom, its negation, and pairs of atoms
// under and/or through the kernel.
func TestBytecodeKernel(t *testing.T) {
	testutil.RequireRoot(t)
	z := newZoo(t)
	socks := zooSockets(t, z)
	atoms := zooAtoms(z)
	n := 0
	for i, a := range atoms {
		b := atoms[(i*7+3)%len(atoms)]
		for _, e := range []string{a, "not " + a, a + " or " + b, a + " and not " + b, "not ( " + a + " or " + b + " )"} {
			f, err := Parse([]string{e}, nil)
			if err != nil {
				t.Logf("%q: %v", e, err) // "cgroup /" where / has no 8-byte handle
				continue
			}
			if bc, ok := f.Expr.Bytecode(); ok && bc != nil {
				checkKernel(t, z, socks, e, bc)
				n++
			}
		}
	}
	t.Logf("%d programs compared with the kernel", n)
}
