package snapshot

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParsePrefix accepts an address ("10.0.0.1", "::1") or a CIDR ("10.0.0.0/8"),
// with optional brackets around IPv6 ("[::1]"). A v4-mapped prefix is stored
// as IPv4, so it matches both spellings.
func ParsePrefix(s string) (netip.Prefix, error) {
	in := strings.TrimSpace(s)
	in = strings.TrimPrefix(in, "[")
	in = strings.Replace(in, "]", "", 1)
	if strings.Contains(in, "/") {
		p, err := netip.ParsePrefix(in)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad address or CIDR %q", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(in)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad address or CIDR %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
