package render

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAppendTerm(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nginx", "nginx"},
		{"ok\nFORGED 0.0.0", `ok\nFORGED 0.0.0`},
		{"a\tb\rc", `a\tb\rc`},
		{"esc\x1b[2J", `esc\x1b[2J`},
		{"nul\x00del\x7f", `nul\x00del\x7f`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"csi\u009b", `csi\u009b`},
		{"héllo ☃", "héllo ☃"},
		{`back\slash`, `back\slash`},
	}
	for _, tt := range tests {
		if got := string(appendTerm(nil, tt.in)); got != tt.want {
			t.Errorf("appendTerm(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := termString(tt.in); got != tt.want {
			t.Errorf("termString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A link-local address carries its zone: ss's form in tables, RFC 4007's
// in JSON, the device name escaped in both (a name may hold a quote).
func TestAppendEndpointZone(t *testing.T) {
	ll := netip.MustParseAddrPort("[fe80::1]:22")
	global := netip.MustParseAddrPort("[2001:db8::1]:22")
	for _, tc := range []struct {
		ap    netip.AddrPort
		zone  string
		table bool
		want  string
	}{
		{ll, "eth0", true, "[fe80::1]%eth0:22"},
		{ll, "eth0", false, "[fe80::1%eth0]:22"},
		{ll, `a"b`, false, `[fe80::1%a\"b]:22`},
		{ll, "a\nb", true, `[fe80::1]%a\nb:22`},
		{ll, "", false, "[fe80::1]:22"},
		{global, "eth0", false, "[2001:db8::1]:22"}, // a global address needs no zone
	} {
		if got := string(appendEndpoint(nil, unix.AF_INET6, tc.ap, tc.zone, tc.table)); got != tc.want {
			t.Errorf("%v zone %q table %v: %s, want %s", tc.ap, tc.zone, tc.table, got, tc.want)
		}
	}
}
