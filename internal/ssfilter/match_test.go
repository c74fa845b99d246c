package ssfilter

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestMatch pins ss's semantics on synthetic sockets, without root: in
// particular where ss's kernel and user-space tests differ, which the
// zoo test confirmed against the real ss.
func TestMatch(t *testing.T) {
	v4 := &Sock{Family: unix.AF_INET, State: StateEstablished,
		Local: ap("127.0.0.1:80"), Remote: ap("10.0.0.1:40000"), Ifindex: 1, Mark: 0x15}
	v6 := &Sock{Family: unix.AF_INET6, State: StateListen, Local: ap("[::]:22"), Remote: ap("[::]:0")}
	mapped := &Sock{Family: unix.AF_INET6, State: StateEstablished,
		Local: ap("[::ffff:127.0.0.1]:40001"), Remote: ap("[::ffff:127.0.0.2]:443"), Autobound: true}
	bound := &Sock{Family: unix.AF_INET, State: StateEstablished,
		Local: ap("127.0.0.1:40002"), Remote: ap("127.0.0.1:80")} // in range, but bound by the user
	ux := &Sock{Family: unix.AF_UNIX, State: StateEstablished, UnixPath: "/run/Foo.sock", Ino: 1234}
	uxAuto := &Sock{Family: unix.AF_UNIX, State: StateEstablished, UnixPath: "@0001f"}
	all := []*Sock{v4, v6, mapped, bound, ux, uxAuto}
	names := []string{"v4", "v6", "mapped", "bound", "ux", "uxAuto"}

	tests := []struct {
		expr string
		want []bool // per socket in all
	}{
		{"", []bool{true, true, true, true, true, true}},
		// An IPv4 prefix matches v4-mapped addresses...
		{"src 127.0.0.0/8", []bool{true, false, true, true, false, false}},
		// ...but never a pure IPv6 one in the kernel, even /0, while user
		// space alone would let /0 (and all-zero bits) through.
		// (unix sockets pass a /0: ss tests no bits.)
		{"dst 0.0.0.0/0", []bool{true, false, true, true, true, true}},
		// And ss's user space compares an IPv4 prefix with the first bytes
		// of any IPv6 address, so "not dst 0.0.0.0/8" hides v4-mapped
		// sockets (::ffff:... starts with zeros) while the kernel keeps them.
		{"not dst 0.0.0.0/8", []bool{true, false, false, true, true, true}},
		{"src [::ffff:127.0.0.1]", []bool{false, false, true, false, false, false}},
		// "*" is port -1: user space says any port is > -1, the kernel's
		// u16 says none is > 65535.
		{"sport > *", []bool{false, false, false, false, true, true}},
		{"sport <= :65536", []bool{false, false, false, false, true, true}},
		// autobound: kernel's "not bound by the user" and ss's "port in
		// the ephemeral range" both; unix: no name or an autobind name.
		{"autobound", []bool{false, false, true, false, false, true}},
		{"dev lo", []bool{true, false, false, false, false, false}},
		{"fwmark 0x10/0xf0", []bool{true, false, false, false, false, false}},
		{"src unix:/RUN/*", []bool{false, false, false, false, true, false}},
		{"dst unix:*", []bool{false, false, false, false, true, true}}, // ss has no peer names: "" matches "*"
		{"dst unix:?*", []bool{false, false, false, false, false, false}},
		{"sport = :1234", []bool{false, false, false, false, true, false}},
		{"src :80 or dport :80 and not src 127.0.0.1", []bool{false, false, false, false, false, false}},
		{"src :80 or ( dport :80 and not src 127.0.0.1 )", []bool{true, false, false, false, false, false}},
	}
	opts := *testOpts
	opts.Ifindex = func(name string) (uint32, bool) { return 1, name == "lo" }
	for _, tt := range tests {
		f, err := Parse([]string{tt.expr}, &opts)
		if err != nil {
			t.Fatalf("%q: %v", tt.expr, err)
		}
		for i, s := range all {
			if got := f.Expr.Match(s); got != tt.want[i] {
				t.Errorf("%q on %s: Match = %v, want %v", tt.expr, names[i], got, tt.want[i])
			}
		}
	}
}

func TestFilterMatch(t *testing.T) {
	est := &Sock{Family: unix.AF_INET, State: StateEstablished, Local: ap("127.0.0.1:1"), Remote: ap("127.0.0.1:2")}
	lis := &Sock{Family: unix.AF_INET6, State: StateListen, Local: ap("[::1]:1"), Remote: ap("[::]:0")}
	syn := &Sock{Family: unix.AF_INET, State: StateNewSynRecv, Local: ap("127.0.0.1:1"), Remote: ap("127.0.0.1:3")}
	tests := []struct {
		args          []string
		flags         uint32
		est, lis, syn bool
	}{
		{nil, 0, true, false, false},               // -t: StatesConn
		{nil, StatesAll, true, true, true},         // -ta
		{nil, StatesListening, false, true, false}, // -tl
		{[]string{"state", "listening"}, 0, false, true, false},
		{[]string{"state", "syn-recv"}, StatesAll, false, false, true},
		{[]string{"exclude", "all"}, StatesAll, true, false, false}, // falls back to StatesConn
		{[]string{"src inet6:*"}, StatesAll, false, true, false},
		{[]string{"src inet:*"}, StatesAll, true, false, true},
	}
	for _, tt := range tests {
		f, err := Parse(tt.args, testOpts)
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		got := [3]bool{f.Match(est, tt.flags), f.Match(lis, tt.flags), f.Match(syn, tt.flags)}
		if want := [3]bool{tt.est, tt.lis, tt.syn}; got != want {
			t.Errorf("%q flags %#x: Match est/lis/syn = %v, want %v", tt.args, tt.flags, got, want)
		}
	}
}

// TestBytecodeShape pins the encoding of a small program: op layout,
// jump distances, and the reject target one op past the end.
func TestBytecodeShape(t *testing.T) {
	f, err := Parse([]string{"not sport :80 or autobound"}, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	bc, ok := f.Expr.Bytecode()
	if !ok {
		t.Fatal("not compiled")
	}
	if err := Audit(bc); err != nil {
		t.Fatalf("%x: %v", bc, err)
	}
	for _, s := range []*Sock{
		{Family: unix.AF_INET, Local: ap("1.2.3.4:80")},
		{Family: unix.AF_INET, Local: ap("1.2.3.4:81")},
		{Family: unix.AF_INET, Local: ap("1.2.3.4:80"), Autobound: true},
	} {
		want := s.Local.Port() != 80 || s.Autobound
		if got := RunBytecode(bc, s); got != want {
			t.Errorf("%x on %v autobound=%v: %v, want %v", bc, s.Local, s.Autobound, got, want)
		}
	}
	if _, ok := (&Expr{op: opDev}).Bytecode(); ok {
		t.Error("dev compiled; ss never sends DEV_COND")
	}
	if bc, ok := (*Expr)(nil).Bytecode(); !ok || bc != nil {
		t.Error("nil Expr must give no program")
	}
}
