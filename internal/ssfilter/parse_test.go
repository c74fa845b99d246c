package ssfilter

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// testOpts keep the parser off the machine: a fixed service table, device
// table and ephemeral range.
var testOpts = &Options{
	Service: func(name string) (int, bool) {
		p, ok := map[string]int{"https": 443, "ssh": 22, "http": 80}[name]
		return p, ok
	},
	Ifindex: func(name string) (uint32, bool) {
		i, ok := map[string]uint32{"lo": 1, "eth0": 2}[name]
		return i, ok
	},
	CgroupID: func(path string) (uint64, error) {
		if path == "/sys.slice" {
			return 77, nil
		}
		return 0, unix.ENOENT
	},
	Ephemeral: [2]int{32768, 60999},
}

func TestParse(t *testing.T) {
	tests := []struct {
		args   []string
		want   string // Expr.String(); "" for no expression
		states uint32
		given  bool
		family uint8
	}{
		{[]string{}, "", 0, false, 0},
		{[]string{""}, "", 0, false, 0},
		{[]string{"state", "established", "( dport = :443 or sport = :443 )"},
			"( dst *:443 or src *:443 )", 1 << StateEstablished, true, 0},
		{[]string{"dst 10.0.0.5"}, "dst 10.0.0.5/32", 0, false, 0},
		{[]string{"( dport = :443 )"}, "dst *:443", 0, false, 0},
		{[]string{"exclude", "listening"}, "", StatesAll &^ (1 << StateListen), true, 0},
		{[]string{"sport", "gt", ":1024", "and", "not", "dst", "127.0.0.0/8"},
			"( not sport <= *:1024 and not dst 127.0.0.0/8 )", 0, false, 0},
		// Precedence: all binary operators equal, left to right.
		{[]string{"sport :1 or sport :2 and sport :3"}, "( ( src *:1 or src *:2 ) and src *:3 )", 0, false, 0},
		{[]string{"sport :1 and sport :2 or sport :3"}, "( ( src *:1 and src *:2 ) or src *:3 )", 0, false, 0},
		{[]string{"sport :1 or sport :2 sport :3"}, "( ( src *:1 or src *:2 ) and src *:3 )", 0, false, 0},
		{[]string{"not sport :1 or sport :2"}, "( not src *:1 or src *:2 )", 0, false, 0},
		{[]string{"! ! sport :1"}, "not not src *:1", 0, false, 0},
		{[]string{"sport :1 || ( sport :2 && sport :3 )"}, "( src *:1 or ( src *:2 and src *:3 ) )", 0, false, 0},
		// Operators.
		{[]string{"sport == :80"}, "src *:80", 0, false, 0},
		{[]string{"sport eq 80"}, "src *:80", 0, false, 0},
		{[]string{"sport != :80"}, "not src *:80", 0, false, 0},
		{[]string{"dport ne :80"}, "not dst *:80", 0, false, 0},
		{[]string{"dport neq :80"}, "not dst *:80", 0, false, 0},
		{[]string{"sport < :80"}, "not sport >= *:80", 0, false, 0},
		{[]string{"sport lt :80"}, "not sport >= *:80", 0, false, 0},
		{[]string{"dport > :80"}, "not dport <= *:80", 0, false, 0},
		{[]string{"sport <= :80"}, "sport <= *:80", 0, false, 0},
		{[]string{"sport le :80"}, "sport <= *:80", 0, false, 0},
		{[]string{"dport leq :80"}, "dport <= *:80", 0, false, 0},
		{[]string{"dport >= :80"}, "dport >= *:80", 0, false, 0},
		{[]string{"dport ge :80"}, "dport >= *:80", 0, false, 0},
		{[]string{"dport geq :0x50"}, "dport >= *:80", 0, false, 0},
		{[]string{"sport = :https"}, "src *:443", 0, false, 0},
		{[]string{"sport = *"}, "src *", 0, false, 0},
		{[]string{"sport = *80"}, "src *", 0, false, 0},
		{[]string{"sport = [80]"}, "src *:80", 0, false, 0},
		{[]string{"sport = :-1"}, "src *", 0, false, 0},
		// Hosts.
		{[]string{"src 127.0.0.1:80"}, "src 127.0.0.1/32:80", 0, false, 0},
		{[]string{"src = 10/8"}, "src 10.0.0.0/8", 0, false, 0},
		{[]string{"src 127.1"}, "src 127.1.0.0/32", 0, false, 0},
		{[]string{"src 0x7f.1.010.1"}, "src 127.1.8.1/32", 0, false, 0},
		{[]string{"src 10.0.0.0/255.255.0.0"}, "src 10.0.0.0/16", 0, false, 0},
		{[]string{"src 10.0.0.0/any"}, "src *", 0, false, 0},
		{[]string{"src any"}, "src *", 0, false, 0},
		{[]string{"src default:22"}, "src *:22", 0, false, 0},
		{[]string{"src *"}, "src *", 0, false, 0},
		{[]string{"src *:22"}, "src *:22", 0, false, 0},
		{[]string{"src :22"}, "src *:22", 0, false, 0},
		{[]string{"src [::1]"}, "src [::1/128]", 0, false, 0},
		{[]string{"src [::1]:22"}, "src [::1/128]:22", 0, false, 0},
		{[]string{"src [::1]22"}, "src [::1/128]:22", 0, false, 0},
		{[]string{"src [fe80::/10]:*"}, "src [fe80::/10]", 0, false, 0},
		{[]string{"src fe80::/10"}, "src [fe80::/10]", 0, false, 0},
		{[]string{"src ::1:"}, "src [::1/128]", 0, false, 0},
		{[]string{"src ::ffff:127.0.0.1:"}, "src [::ffff:127.0.0.1/128]", 0, false, 0},
		{[]string{"src inet:127.0.0.1:22"}, "src 127.0.0.1/32:22", 0, false, unix.AF_INET},
		{[]string{"src inet6:[::1]"}, "src [::1/128]", 0, false, unix.AF_INET6},
		{[]string{"src inet:* or src inet6:*"}, "( src * or src * )", 0, false, unix.AF_INET6},
		{[]string{"src unix:/run/*.sock"}, "src unix:/run/*.sock", 0, false, unix.AF_UNIX},
		// Other predicates.
		{[]string{"dev lo"}, "dev 1", 0, false, 0},
		{[]string{"dev = eth0"}, "dev 2", 0, false, 0},
		{[]string{"dev != 7"}, "not dev 7", 0, false, 0},
		{[]string{"dev if9"}, "dev 9", 0, false, 0},
		{[]string{"fwmark = 0x10/0xf0"}, "fwmark 0x10/0xf0", 0, false, 0},
		{[]string{"fwmark 5"}, "fwmark 0x5/0xffffffff", 0, false, 0},
		{[]string{"fwmark 5junk"}, "fwmark 0x5/0xffffffff", 0, false, 0},
		{[]string{"fwmark != -1"}, "not fwmark 0xffffffff/0xffffffff", 0, false, 0},
		{[]string{"cgroup /sys.slice"}, "cgroup id:77", 0, false, 0},
		{[]string{"autobound"}, "autobound", 0, false, 0},
		{[]string{"not autobound and sport :1"}, "( not autobound and src *:1 )", 0, false, 0},
		// State words.
		{[]string{"state", "Established", "state", "LISTENING"}, "", 1<<StateEstablished | 1<<StateListen, true, 0},
		{[]string{"state", "connected", "exclude", "time-wait"}, "",
			StatesAll &^ (1<<StateClose | 1<<StateListen | 1<<StateTimeWait), true, 0},
		{[]string{"excl", "bucket"}, "", StatesAll &^ (1<<StateSynRecv | 1<<StateTimeWait), true, 0},
		{[]string{"exclude", "all"}, "", 0, true, 0},
		{[]string{"state", "unknown"}, "", 1, true, 0},
		{[]string{"state", "closed", "state", "unconnected", "state", "close"}, "", 1 << StateClose, true, 0},
		{[]string{"state", "syn-rcv", "state", "synchronized"}, "",
			StatesAll &^ (1<<StateClose | 1<<StateListen | 1<<StateSynSent), true, 0},
		{[]string{"state", "big"}, "", StatesAll &^ (1<<StateSynRecv | 1<<StateTimeWait), true, 0},
	}
	for _, tt := range tests {
		f, err := Parse(tt.args, testOpts)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.args, err)
			continue
		}
		if got := f.Expr.String(); got != tt.want {
			t.Errorf("Parse(%q) = %s, want %s", tt.args, got, tt.want)
		}
		if f.States != tt.states || f.StatesGiven != tt.given || f.Family != tt.family {
			t.Errorf("Parse(%q): states %#x given %v family %d, want %#x %v %d",
				tt.args, f.States, f.StatesGiven, f.Family, tt.states, tt.given, tt.family)
		}
		if bc, ok := f.Expr.Bytecode(); ok {
			if err := Audit(bc); err != nil && bc != nil {
				t.Errorf("Parse(%q): bytecode %x: %v", tt.args, bc, err)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		args []string
		word string // the message must name it
	}{
		{[]string{"sport=:80"}, "sport=:80"},
		{[]string{"(dport = :443)"}, "(dport"},
		{[]string{"( dport = :443"}, "end"},
		{[]string{"dport = :443 )"}, ")"},
		{[]string{"( )"}, ")"},
		{[]string{"sport :1 or"}, "end"},
		{[]string{"or sport :1"}, "or"},
		{[]string{"not"}, "end"},
		{[]string{"10.0.0.5"}, "10.0.0.5"},
		{[]string{"dst != 10.0.0.5"}, "!="},
		{[]string{"dst > 10.0.0.5"}, ">"},
		{[]string{"dev < lo"}, "<"},
		{[]string{"dst = = 10.0.0.5"}, "="},
		{[]string{"src ::1"}, ":"},
		{[]string{"src 10.0.0.256"}, "10.0.0.256"},
		{[]string{"src 10.0.0.1/33"}, "10.0.0.1/33"},
		{[]string{"src 10.0.0.1/255.0.255.0"}, "10.0.0.1/255.0.255.0"},
		{[]string{"src any/0"}, "any/0"},
		{[]string{"src [::1"}, "[::1"},
		{[]string{"src fe80::1%lo"}, "fe80::1%lo"},
		{[]string{"src localhost"}, "localhost"},
		{[]string{"src inet6:127.0.0.1:80"}, "127.0.0.1"},
		{[]string{"src inet:[::1]"}, "::1"},
		{[]string{"sport > 127.0.0.1:80"}, "127.0.0.1:80"},
		{[]string{"sport = :HTTPS"}, "HTTPS"},
		{[]string{"sport = :nosuchservice"}, "nosuchservice"},
		{[]string{"sport = :99999999999"}, "99999999999"},
		{[]string{"sport = :08"}, "08"},
		{[]string{"dev nosuch0"}, "nosuch0"},
		{[]string{"dev"}, "end"},
		{[]string{"fwmark = x"}, "x"},
		{[]string{"fwmark = 5/"}, "5/"},
		{[]string{"cgroup /nosuch"}, "/nosuch"},
		{[]string{"src link:eth0"}, "link:eth0"},
		{[]string{"state"}, "state"},
		{[]string{"state", "listen"}, "listen"},
		{[]string{"state established"}, "state"},
		{[]string{"sport :1", "state", "listening"}, "state"},
		{[]string{"AND"}, "AND"},
		{[]string{"sport :1 or sport | sport"}, "|"},
		{[]string{"src 127.0.0.1\\ x"}, "127.0.0.1 x"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.args, testOpts)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want an error naming %q", tt.args, tt.word)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tt.word) || strings.Contains(msg, "\n") {
			t.Errorf("Parse(%q): error %q does not name %q on one line", tt.args, msg, tt.word)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	got := splitArgs([]string{"  a\tb  ", "c\\ d", "e\\", "(x"})
	want := []string{"a", "b", "c d", "e", "(x"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("splitArgs = %q, want %q", got, want)
	}
}

func TestFnmatch(t *testing.T) {
	tests := []struct {
		pat, name string
		want      bool
	}{
		{"*", "", true},
		{"*", "/a/b", true},
		{"/run/*.sock", "/run/x/y.sock", true},
		{"/RUN/?.sock", "/run/a.sock", true},
		{"@[a-f]*", "@Bcd", true},
		{"@[!a-f]*", "@bcd", false},
		{"[", "[", true},
		{"a\\*", "a*", true},
		{"a\\*", "ab", false},
		{"", "", true},
		{"", "x", false},
	}
	for _, tt := range tests {
		if got := fnmatch(tt.pat, tt.name); got != tt.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", tt.pat, tt.name, got, tt.want)
		}
	}
}
