package ssfilter

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// atoms are predicates over the zoo: every operator spelling, hosts in
// every form, v4 prefixes against v4-mapped sockets, impossible ports.
func (z *zoo) atoms() []string {
	P := z.port
	a := []string{
		"sport = :%[1]d", "dport == :%[2]d", "sport eq %[3]d", "dport :%[4]d",
		"sport != :%[5]d", "dport ne :%[1]d", "sport neq :%[2]d",
		"sport < :%[4]d", "sport lt :%[6]d", "dport > :%[2]d", "dport gt :%[10]d",
		"sport <= :%[3]d", "sport le :%[7]d", "dport leq :%[4]d",
		"sport >= :%[5]d", "dport ge :%[3]d", "sport geq :%[9]d",
		"src 127.0.0.1", "src 127.0.0.2:%[2]d", "dst 127.0.0.0/8", "dst 127.0.0.2/31",
		"src [::1]", "src [::1]:%[3]d", "dst [::ffff:127.0.0.1]", "src ::ffff:127.0.0.0/104",
		"dst 0.0.0.0/0", "src *:%[4]d", "src :%[5]d", "dst *", "src [::/0]",
		"src = 127.0.0.3/32:%[7]d", "dst 127.0.0.5", "src 0.0.0.0", "src [::]", "dst [::]:*",
		"src 127.1", "dst 0/1", "src 128.0.0.0/1", "src default", "dst any:%[1]d",
		"src 127.0.0.0/255.255.255.0", "dst ::1:",
		"autobound", "not autobound",
		"fwmark = 0x15", "fwmark 0x7", "fwmark 0x10/0xf0", "fwmark != 0", "fwmark 0/0x1",
		"dev lo", "dev = 1", "dev != lo",
		"cgroup /",
		"sport = *", "sport > *", "dport < :0", "sport <= :65536", "sport = :65536",
	}
	if mnt, err := cgroup2Mount(); err == nil {
		// The cgroup our sockets are in (the test's), by absolute path,
		// and with a trailing slash.
		a = append(a, "cgroup "+mnt, "cgroup != "+mnt+"/")
	}
	out := make([]string, len(a))
	for i, s := range a {
		out[i] = fmt.Sprintf(s, P(0), P(1), P(2), P(3), P(4), P(5), P(6), P(7), P(8), P(9))
		if !strings.Contains(s, "%") {
			out[i] = s
		}
	}
	return out
}

var (
	binops = []string{"and", "&", "&&", "or", "|", "||"}
	notops = []string{"not", "!"}
	// statePrefixes are whole arguments put before the expression.
	statePrefixes = [][]string{
		nil, nil, nil,
		{"state", "established"}, {"state", "connected"}, {"exclude", "listening"},
		{"state", "bucket"}, {"state", "listening", "state", "close-wait"},
		{"exclude", "time-wait", "exclude", "established"}, {"state", "synchronized"},
		{"state", "big"}, {"state", "fin-wait-2"}, {"excl", "all"}, {"state", "all"},
		{"state", "time-wait"}, {"state", "Listening"},
	}
)

// gen builds a random expression of at most depth levels.
func gen(r *rand.Rand, atoms []string, depth int) string {
	if depth == 0 {
		return atoms[r.IntN(len(atoms))]
	}
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	switch r.IntN(7) {
	case 0:
		return atoms[r.IntN(len(atoms))]
	case 1:
		return "( " + gen(r, atoms, depth-1) + " " + pick(binops) + " " + gen(r, atoms, depth-1) + " )"
	case 2:
		return pick(notops) + " " + gen(r, atoms, depth-1)
	case 3: // juxtaposition
		return gen(r, atoms, depth-1) + " " + gen(r, atoms, depth-1)
	case 4: // a precedence mix, unparenthesized
		return gen(r, atoms, depth-1) + " " + pick(binops) + " " + gen(r, atoms, depth-1) + " " + pick(binops) + " " + gen(r, atoms, depth-1)
	case 5:
		return "( " + gen(r, atoms, depth-1) + " )"
	default:
		return gen(r, atoms, depth-1) + " " + pick(binops) + " " + gen(r, atoms, depth-1)
	}
}

// breakExpr turns a valid expression into one ss refuses (or, for a few
// mutations, might accept: the test only asks that we agree with ss).
func breakExpr(r *rand.Rand, e string) string {
	w := strings.Fields(e)
	switch r.IntN(8) {
	case 0:
		return e + " or"
	case 1:
		return "and " + e
	case 2:
		return e + " )"
	case 3:
		return "( " + e
	case 4: // glue a word to the next: "sport=" or "(dport"
		if len(w) > 1 {
			i := r.IntN(len(w) - 1)
			return strings.Join(slices.Concat(w[:i], []string{w[i] + w[i+1]}, w[i+2:]), " ")
		}
		return e + " not"
	case 5:
		return e + " state established"
	case 6:
		return strings.Replace(e, "src", "src !=", 1) + " dst > 10.0.0.1"
	default:
		return e + " " + []string{"src ::1", "sport = :nosuchport", "dev nosuch0", "fwmark = x", "dst 10.0.0.256", "10.0.0.1", "cgroup /nosuch", "sport > 127.0.0.1:80"}[r.IntN(8)]
	}
}

type testCase struct {
	args  []string
	valid bool // generated as valid (for counting only)
}

// cases: the examples, precedence probes, then generated ones.
func (z *zoo) cases() []testCase {
	P := z.port
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
	var cs []testCase
	for _, a := range fixed {
		cs = append(cs, testCase{a, true})
	}
	r := rand.New(rand.NewPCG(1, 2)) // fixed seed: the same expressions every run
	atoms := z.atoms()
	for i := 0; i < 160; i++ {
		e := gen(r, atoms, 1+r.IntN(3))
		valid := i%5 != 4
		if !valid {
			e = breakExpr(r, e)
		}
		args := slices.Clone(statePrefixes[r.IntN(len(statePrefixes))])
		if r.IntN(2) == 0 {
			args = append(args, e) // one argument, ss splits it
		} else {
			args = append(args, strings.Fields(e)...)
		}
		cs = append(cs, testCase{args, valid})
	}
	return cs
}

// TestAgainstSS runs every case through the real ss and through Parse and
// Filter.Match over the same sockets, and each expression's bytecode
// through the kernel.
func TestAgainstSS(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("no ss")
	}
	z := newZoo(t)
	socks := z.sockets(t)
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
	for i, c := range z.cases() {
		f, perr := Parse(c.args, nil)
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
			got, ok, serr := z.runSS(t, v.flags, c.args, oneState)
			if ok != (perr == nil) {
				t.Errorf("ss %s %q: ss ok=%v (%s), Parse error %v", v.flags, c.args, ok, firstLine(serr), perr)
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
				t.Errorf("ss %s %q (parsed %s):\n ss:    %q\n Match: %q", v.flags, c.args, f.Expr, got, want)
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
func checkKernel(t *testing.T, z *zoo, socks []Sock, what string, bc []byte) {
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
		if z.inZoo(ks[i].Local, ks[i].Remote) {
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
	needRoot(t)
	z := newZoo(t)
	socks := z.sockets(t)
	atoms := z.atoms()
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

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
