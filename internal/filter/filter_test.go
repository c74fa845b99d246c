package filter

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/pflag"

	"github.com/socklife/socklife/internal/ssfilter"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// parse registers the flags on a fresh set, as a command does, and parses args.
func parse(t *testing.T, args ...string) (*Filter, error) {
	t.Helper()
	var f Flags
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f.Register(fs, "only this state")
	if err := fs.Parse(args); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return f.Parse()
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want func(*Filter) bool
	}{
		{[]string{"--port", "80,443", "--port", "8080"}, func(f *Filter) bool {
			return slices.Equal(f.Ports, Ports{{80, 80}, {443, 443}, {8080, 8080}})
		}},
		{[]string{"--sport", "8000-8010", "--dport", " 22 "}, func(f *Filter) bool {
			return slices.Equal(f.SPorts, Ports{{8000, 8010}}) && slices.Equal(f.DPorts, Ports{{22, 22}})
		}},
		{[]string{"--src", "10.0.0.0/8,::1", "--dst", "[::ffff:10.1.2.3]"}, func(f *Filter) bool {
			return len(f.Src) == 2 && f.Dst[0] == netip.MustParsePrefix("10.1.2.3/32")
		}},
		{[]string{"--pid", "1,2", "--pid", "3"}, func(f *Filter) bool { return slices.Equal(f.PIDs, []uint32{1, 2, 3}) }},
		// a comma is part of a pattern, not a list separator
		{[]string{"--comm", "^x{1,3}$"}, func(f *Filter) bool { return len(f.Comms) == 1 && f.Comms[0].MatchString("xx") }},
		{[]string{"--comm", "redis", "--comm", "nginx"}, func(f *Filter) bool { return len(f.Comms) == 2 }},
		// 16 characters, but its shortest match has 5: kept
		{[]string{"--comm", "^(nginx|redis)$"}, func(f *Filter) bool { return len(f.Comms) == 1 }},
		{[]string{"--comm", "abcdefghijklmno"}, func(f *Filter) bool { return len(f.Comms) == 1 }},
		{[]string{"-4"}, func(f *Filter) bool { return f.IPv4Only && !f.IPv6Only }},
		{[]string{"--state", "close-wait"}, func(f *Filter) bool { return f.States != 0 }},
		{nil, func(f *Filter) bool { return f.Netns == 0 && !f.Owned() && !f.inet() }},
	} {
		f, err := parse(t, tc.args...)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !tc.want(f) {
			t.Errorf("%q: got %+v", tc.args, f)
		}
	}
}

// Bad values get one line naming the flag.
func TestParseBad(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--port", "http"}, `bad --port "http": want a port number 1-65535`},
		{[]string{"--sport", "70000"}, `bad --sport "70000"`},
		{[]string{"--dport", "90-80"}, "the range ends before it starts"},
		{[]string{"--port", "80,0"}, "--port 0 matches nothing"},
		{[]string{"--src", "10.0.0.0/33"}, "bad --src"},
		{[]string{"--dst", "example.com"}, "bad --dst"},
		{[]string{"--pid", "x"}, `bad --pid "x"`},
		{[]string{"--pid", "0"}, "--pid 0 matches nothing"},
		{[]string{"--comm", "a("}, `bad --comm "a("`},
		{[]string{"--comm", "systemd-resolved"}, "cannot match: the kernel keeps 15 bytes"},
		{[]string{"--comm", "^.{16}"}, "cannot match"},
		// one branch that can never match is a filter half gone silently
		{[]string{"--comm", "nginx|systemd-resolved"}, `"systemd-resolved" cannot match: the kernel keeps 15 bytes`},
		{[]string{"--comm", "^(systemd-resolved|nginx)$"}, `"systemd-resolved" cannot match`},
		{[]string{"-4", "-6"}, "-4 and -6 exclude each other"},
		{[]string{"--state", "bogus"}, `--state: unknown state "bogus"`},
		{[]string{"--netns", "0"}, "--netns 0 matches nothing"},
		{[]string{"--netns", "4294967295"}, "--netns 4294967295: no such network namespace"},
		{[]string{"--netns", "socklife-no-such-name"}, `no network namespace named "socklife-no-such-name"`},
		{[]string{"--netns", "../../proc/self/ns/net"}, "no network namespace named"},
	} {
		_, err := parse(t, tc.args...)
		switch {
		case err == nil:
			t.Errorf("%q: no error", tc.args)
		case !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n"):
			t.Errorf("%q: error %q, want one line with %q", tc.args, err, tc.want)
		}
	}
}

// --netns takes an inode or a name in /run/netns, which resolves to the
// namespace's inode; a file there that is no namespace is refused.
func TestParseNetns(t *testing.T) {
	path := testutil.NamedNetns(t)
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	ino := uint32(st.Ino)
	for _, arg := range []string{filepath.Base(path), strconv.FormatUint(uint64(ino), 10)} {
		f, err := parse(t, "--netns", arg)
		if err != nil || f.Netns != ino {
			t.Errorf("--netns %s: %+v, %v; want inode %d", arg, f, err, ino)
		}
	}
	self, err := snapshot.CurrentNetns()
	if err != nil {
		t.Fatal(err)
	}
	if f, err := parse(t, "--netns", strconv.FormatUint(uint64(self), 10)); err != nil || f.Netns != self {
		t.Errorf("--netns of our own: %+v, %v", f, err)
	}
	stray := filepath.Join(testutil.NetnsRunDir, "socklife-test-stray-"+strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(stray, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(stray)
	if _, err := parse(t, "--netns", filepath.Base(stray)); err == nil {
		t.Errorf("--netns of a plain file in /run/netns: no error")
	}
}

// The matchers: every field must match, any entry within one.
func TestSocket(t *testing.T) {
	s := snapshot.Socket{
		Protocol: snapshot.TCP,
		Netns:    7, Local: netip.MustParseAddrPort("[::ffff:10.0.0.1]:80"), Remote: netip.MustParseAddrPort("[::ffff:10.0.0.2]:5000"),
		Processes: []snapshot.Process{{PID: 41, Comm: "nginx"}, {PID: 42, Comm: "nginx: worker"}},
	}
	listener := snapshot.Socket{Protocol: snapshot.TCP, Netns: 7, Local: netip.MustParseAddrPort("[::]:80")}
	unix := snapshot.Socket{Protocol: snapshot.Unix, Netns: 7}
	kworker := snapshot.Socket{Protocol: snapshot.TCP, Netns: 7, Local: s.Local,
		Processes: []snapshot.Process{{PID: 9, Comm: "kworker/u8:1-events_unbound"}}}
	for _, tc := range []struct {
		name string
		args []string
		s    *snapshot.Socket
		want bool
	}{
		{"no filter", nil, &s, true},
		{"port, local side", []string{"--port", "80"}, &s, true},
		{"port, remote side", []string{"--port", "5000"}, &s, true},
		{"port, neither", []string{"--port", "443"}, &s, false},
		{"ports, one matches", []string{"--port", "443,80"}, &s, true},
		{"port range", []string{"--port", "4000-6000"}, &s, true},
		{"sport", []string{"--sport", "80"}, &s, true},
		{"sport is not dport", []string{"--sport", "5000"}, &s, false},
		{"dport", []string{"--dport", "5000"}, &s, true},
		{"dports, none matches", []string{"--dport", "80,443"}, &s, false},
		{"a listener's port is either side's", []string{"--port", "80"}, &listener, true},
		{"a listener has no remote port", []string{"--dport", "80"}, &listener, false},
		{"src CIDR of a v4-mapped address", []string{"--src", "10.0.0.0/24"}, &s, true},
		{"dst", []string{"--dst", "10.0.0.2"}, &s, true},
		{"dst elsewhere", []string{"--dst", "192.168.0.0/16"}, &s, false},
		{"netns", []string{"--netns", "7"}, &s, true},
		{"v4-mapped is IPv4", []string{"-4"}, &s, true},
		{"v4-mapped is not IPv6", []string{"-6"}, &s, false},
		{"[::] listener is IPv6", []string{"-6"}, &listener, true},
		{"pid of any holder", []string{"--pid", "42"}, &s, true},
		{"pids", []string{"--pid", "1,41"}, &s, true},
		{"other pid", []string{"--pid", "43"}, &s, false},
		{"comm, unanchored", []string{"--comm", "worker"}, &s, true},
		{"comm, anchored", []string{"--comm", "^ginx"}, &s, false},
		{"pid and comm of the same process", []string{"--pid", "41", "--comm", "worker"}, &s, false},
		{"no owner known", []string{"--comm", "nginx"}, &listener, false},
		// /proc names a kworker past the 15 bytes BPF sees of it
		{"comm as the kernel keeps it", []string{"--comm", "events"}, &kworker, false},
		{"comm's first 15 bytes", []string{"--comm", "^kworker/u8:1-ev$"}, &kworker, true},
		{"Unix: no ports", []string{"--port", "80"}, &unix, false},
		{"Unix: family is the dump's", []string{"-4"}, &unix, true},
	} {
		f := parseOK(t, tc.args)
		if tc.name == "netns" {
			f.Netns = 7 // no namespace has inode 7: set past Parse's check
		}
		if got := f.Socket(tc.s); got != tc.want {
			t.Errorf("%s: %v = %v, want %v", tc.name, tc.args, got, tc.want)
		}
	}
}

func parseOK(t *testing.T, args []string) *Filter {
	t.Helper()
	if len(args) == 2 && args[0] == "--netns" {
		return &Filter{}
	}
	f, err := parse(t, args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return f
}

// Match tests connections and events by any of their owners; none known
// fails a pid or comm filter.
func TestMatchOwners(t *testing.T) {
	f := &Filter{PIDs: []uint32{11}}
	l, r := netip.MustParseAddrPort("127.0.0.1:80"), netip.MustParseAddrPort("127.0.0.1:5000")
	if !f.Match(1, l, r, tracer.Holder{PID: 10}, tracer.Holder{PID: 11}) {
		t.Error("a holder's pid did not match")
	}
	if f.Match(1, l, r) {
		t.Error("an unknown owner matched --pid")
	}
	if !(&Filter{}).Match(1, l, r) {
		t.Error("the zero filter refused an unknown owner")
	}
}

// Split gives the kernel what it can hold: one pid, 8 ports a set; the
// rest stays for Match.
func TestSplit(t *testing.T) {
	f := &Filter{PIDs: []uint32{5}, Ports: Ports{{80, 80}, {443, 443}}, SPorts: Ports{{8000, 8010}}, Netns: 9, IPv6Only: true,
		Src: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	o, rest := f.Split(true)
	if o.PID != 5 || !slices.Equal(o.Ports, []uint16{80, 443}) || o.SPorts != nil || o.Netns != 9 || !o.IPv6Only {
		t.Errorf("kernel part %+v", o)
	}
	if rest.PIDs != nil || rest.Ports != nil || len(rest.SPorts) != 1 || rest.Netns != 0 || rest.IPv6Only || len(rest.Src) != 1 {
		t.Errorf("user-space part %+v", rest)
	}
	if o, rest := f.Split(false); o.PID != 0 || !slices.Equal(rest.PIDs, []uint32{5}) {
		t.Errorf("pid left out of the kernel: %d, rest %v", o.PID, rest.PIDs)
	}
	two := &Filter{PIDs: []uint32{5, 6}}
	if o, rest := two.Split(true); o.PID != 0 || len(rest.PIDs) != 2 {
		t.Errorf("two pids: kernel pid %d, rest %v; want both in user space", o.PID, rest.PIDs)
	}
	if o, _ := (&Filter{DPorts: Ports{{1, tracer.MaxFilterPorts}}}).Split(true); len(o.DPorts) != tracer.MaxFilterPorts {
		t.Errorf("a range that fits: kernel dports %v", o.DPorts)
	}
}

// parseExpr is parse with an ss expression after the flags; withState says
// whether the command has --state.
func parseExpr(t *testing.T, withState bool, flags []string, expr ...string) (*Filter, error) {
	t.Helper()
	var f Flags
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	help := ""
	if withState {
		help = "only this state"
	}
	f.Register(fs, help)
	if err := fs.Parse(flags); err != nil {
		t.Fatalf("%v: %v", flags, err)
	}
	f.SetExpr(expr)
	return f.Parse()
}

// An ss expression after the flags filters connections the way ss filters
// sockets; its state words join --state.
func TestExpr(t *testing.T) {
	ap := netip.MustParseAddrPort
	https := []string{"state", "established", "(", "dport", "=", ":443", "or", "sport", "=", ":443", ")"}
	f, err := parseExpr(t, true, nil, https...)
	if err != nil {
		t.Fatal(err)
	}
	if f.States != tcpstate.Of(tcpstate.Established) {
		t.Errorf("states %v, want established", f.States)
	}
	for _, tc := range []struct {
		local, remote string
		want          bool
	}{
		{"10.0.0.1:40000", "10.0.0.5:443", true},
		{"10.0.0.1:443", "10.0.0.9:40000", true},
		{"10.0.0.1:40000", "10.0.0.5:80", false},
		{"[2001:db8::1]:40000", "[2001:db8::5]:443", true},
	} {
		if got := f.Match(1, ap(tc.local), ap(tc.remote)); got != tc.want {
			t.Errorf("%s -> %s: %v, want %v", tc.local, tc.remote, got, tc.want)
		}
	}
	// an IPv4 prefix matches a dual-stack socket's v4-mapped peer, as in ss
	f, err = parseExpr(t, false, nil, "dst", "10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	if !f.Match(1, ap("[::ffff:10.0.0.1]:40000"), ap("[::ffff:10.0.0.5]:443")) || f.Match(1, ap("192.0.2.1:1"), ap("192.0.2.2:2")) {
		t.Error("dst 10.0.0.0/8: wrong on v4-mapped or plain IPv4")
	}
	// --state and state words: a state must be in both
	f, err = parseExpr(t, true, []string{"--state", "connected"}, "state", "established", "state", "listening")
	if err != nil || f.States != tcpstate.Of(tcpstate.Established) {
		t.Errorf("--state connected with state established/listening: %v, %v; want established", f.States, err)
	}
	for _, tc := range []struct {
		withState bool
		flags     []string
		expr      []string
		want      string
	}{
		{true, nil, []string{"dev", "=", "lo"}, `"dev" needs a socket's own facts`},
		{true, nil, []string{"autobound"}, `"autobound"`},
		{true, nil, []string{"src", "unix:/run/*"}, "names Unix sockets"},
		{false, nil, []string{"state", "established"}, "no states to choose"},
		{true, []string{"--state", "listening"}, []string{"state", "established"}, "none in common"},
		{true, []string{"-6"}, []string{"src", "inet:10.0.0.1"}, "exclude each other"},
		{true, nil, []string{"(", "dport", "=", ":443"}, "bad filter"},
	} {
		if _, err := parseExpr(t, tc.withState, tc.flags, tc.expr...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want an error with %q", tc.flags, tc.expr, err, tc.want)
		}
	}
}

// A namespace counted whole stands for what Socket keeps only when the
// filter looks at nothing of a socket but its namespace (and owners,
// which the counts leave to Unowned).
func TestWholeNamespaces(t *testing.T) {
	self, err := snapshot.CurrentNetns()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"--netns", strconv.FormatUint(uint64(self), 10)}, true},
		{[]string{"--pid", "1"}, true},
		{[]string{"--comm", "nginx"}, true},
		{[]string{"--state", "close-wait"}, true}, // the command's, not Socket's
		{[]string{"--port", "80"}, false},
		{[]string{"--sport", "80"}, false},
		{[]string{"--dport", "80"}, false},
		{[]string{"--src", "10.0.0.0/8"}, false},
		{[]string{"--dst", "::1"}, false},
		{[]string{"-4"}, false},
		{[]string{"-6"}, false},
	} {
		f, err := parse(t, tc.args...)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := f.WholeNamespaces(); got != tc.want {
			t.Errorf("%q: WholeNamespaces() = %v, want %v", tc.args, got, tc.want)
		}
	}
	e, err := ssfilter.ParseString("sport = :80", nil)
	if err != nil {
		t.Fatal(err)
	}
	if expr := (&Filter{Expr: e.Expr}); expr.WholeNamespaces() {
		t.Error("an ss expression: WholeNamespaces() = true, want false")
	}
}
