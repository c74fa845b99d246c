package snapshot

import (
	"os"
	"strconv"
	"testing"
)

// A prefix that parses is valid, masked, and reads back as itself.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"10.0.0.1", "10.0.0.0/8", "::1", "[::1]", "[2001:db8::]/32", "::ffff:10.0.0.0/104",
		"::ffff:1.2.3.4/100", "fe80::1%eth0", " 10.0.0.1 ", "[::1/64]", "10.0.0.0/33", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() {
			t.Fatalf("%q: %v, not a valid masked prefix", s, p)
		}
		if p.Addr().Is4In6() {
			t.Errorf("%q: %v kept its v4-mapped form", s, p)
		}
		if again, err := ParsePrefix(p.String()); err != nil || again != p {
			t.Errorf("%q: %v reads back as %v, %v", s, p, again, err)
		}
	})
}

// sockstat is the kernel's text; a hint taken from it stays a modest,
// non-negative number whatever it says (a negative one panicked in make).
func FuzzSockstatHint(f *testing.F) {
	if real, err := os.ReadFile("/proc/net/sockstat"); err == nil {
		f.Add(string(real), "TCP:", true)
	}
	f.Add("TCP: inuse 27 orphan 12 tw 4948 alloc 27 mem 0\nUDP: inuse 0 mem 0\n", "TCP:", true)
	f.Add("TCP6: inuse -5\n", "TCP6:", false)
	f.Add("TCP: inuse 99999999999999999999 tw 9223372036854775807\n", "TCP:", true)
	f.Fuzz(func(t *testing.T, data, key string, tw bool) {
		if n := sockstatHintOf(data, key, tw); n < 16 || n > 3*maxSockstatHint {
			t.Errorf("hint %d from %q", n, data)
		}
	})
}

// An fd link is a socket's inode only in the form the kernel writes.
func FuzzParseSocketLink(f *testing.F) {
	for _, s := range []string{"socket:[12345]", "socket:[]", "socket:[18446744073709551616]", "pipe:[1]", "socket:[1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, link []byte) {
		ino, ok := parseSocketLink(link)
		if ok && string(link) != "socket:["+strconv.FormatUint(ino, 10)+"]" && link[len("socket:[")] != '0' {
			t.Errorf("%q read as inode %d", link, ino)
		}
	})
}
