package ssfilter

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"
)

// hostCond is ss's struct aafilter for a host: an address prefix and a
// port, or a unix path pattern.
type hostCond struct {
	family  uint8    // of the address: AF_UNSPEC when none was given
	bits    int      // prefix length; 0 matches every address
	addr    [16]byte // v4 in the first 4 bytes, the rest zero, as ss
	port    int      // -1: any port
	pattern string   // AF_UNIX: fnmatch pattern
}

// host parses a HOST as ss's parse_hostcond does; isPort is set after
// sport/dport, where only the port counts.
func (p *parser) host(word string, isPort bool) (*hostCond, error) {
	h := &hostCond{port: -1}
	fam := p.fam
	s := word
	for _, pre := range []struct {
		name string
		fam  uint8
	}{{"unix:", unix.AF_UNIX}, {"link:", unix.AF_PACKET}, {"netlink:", unix.AF_NETLINK},
		{"vsock:", unix.AF_VSOCK}, {"inet:", unix.AF_INET}, {"inet6:", unix.AF_INET6}} {
		if strings.HasPrefix(s, pre.name) {
			fam = pre.fam
			s = s[len(pre.name):]
			break
		}
	}
	switch fam {
	case unix.AF_UNIX:
		// The rest, whole, is a pattern; the port is ignored.
		h.family = unix.AF_UNIX
		h.pattern = s
		p.noteFamily(fam)
		return h, nil
	case unix.AF_PACKET, unix.AF_NETLINK, unix.AF_VSOCK:
		return nil, fmt.Errorf("link, netlink and vsock hosts are not supported")
	}

	// Split address and port where ss does: after "[...]", after a
	// leading "*", else at the last ':' (after the first '/' if there is
	// one, so "fe80::1/64" has no port but "::1" has port 1 and address
	// ":" which is refused). For sport/dport the whole word is the port.
	addr, port, hasPort := s, "", false
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return nil, fmt.Errorf("no closing ']'")
		}
		addr, port, hasPort = s[1:end], s[end+1:], true
	case strings.HasPrefix(s, "*"):
		addr, port, hasPort = "*", s[1:], true
	default:
		from := 0
		if i := strings.IndexByte(s, '/'); i >= 0 {
			from = i
		}
		if i := strings.LastIndexByte(s[from:], ':'); i >= 0 {
			addr, port, hasPort = s[:from+i], s[from+i:], true
		}
	}
	if isPort {
		// ss then takes the port from where the address starts: inside
		// the brackets for "[...]", else the whole word ("*..." is then
		// any port).
		port, hasPort = s, true
		if strings.HasPrefix(s, "[") {
			port = addr
		}
	}
	if hasPort && port != "" {
		port = strings.TrimPrefix(port, ":")
		if port != "" && port[0] != '*' {
			n, ok := getInteger(port)
			if !ok {
				svc := p.opts.Service
				if svc == nil {
					svc = etcService
				}
				n, ok = svc(port)
				if !ok || n <= 0 {
					return nil, fmt.Errorf("%q does not look like a port", port)
				}
			}
			h.port = n
		}
	}
	if !isPort && addr != "" && addr[0] != '*' {
		if err := h.setPrefix(addr, fam); err != nil {
			return nil, fmt.Errorf("%q is not an inet prefix (host names are not resolved)", addr)
		}
	}
	p.noteFamily(fam)
	return h, nil
}

// setPrefix is iproute2's get_prefix_1 for inet families: "any", "all"
// and "default" match everything; a ':' makes it IPv6; else ss's own
// dotted-quad parser, where "10" is 10.0.0.0 and parts may be hex/octal.
func (h *hostCond) setPrefix(s string, fam uint8) error {
	a, mask, slash := s, "", false
	if i := strings.IndexByte(s, '/'); i >= 0 {
		a, mask, slash = s[:i], s[i+1:], true
	}
	maxBits := 0
	switch {
	case a == "default" || a == "any" || a == "all":
		if slash {
			return fmt.Errorf("prefix length on %q", a)
		}
		h.family, h.bits = fam, 0
		return nil
	case strings.IndexByte(a, ':') >= 0:
		if fam != unix.AF_UNSPEC && fam != unix.AF_INET6 {
			return fmt.Errorf("not inet6")
		}
		// inet_pton takes no zone and no brackets; netip takes a zone.
		if strings.ContainsAny(a, "%") {
			return fmt.Errorf("zone")
		}
		ip, err := netip.ParseAddr(a)
		if err != nil || !ip.Is6() {
			return fmt.Errorf("bad inet6 address")
		}
		h.family, h.addr, maxBits = unix.AF_INET6, ip.As16(), 128
	default:
		if fam != unix.AF_UNSPEC && fam != unix.AF_INET {
			return fmt.Errorf("not inet")
		}
		v4, ok := parseIPv4(a)
		if !ok {
			return fmt.Errorf("bad inet address")
		}
		h.family, maxBits = unix.AF_INET, 32
		copy(h.addr[:4], v4[:])
	}
	h.bits = maxBits
	if slash {
		n, ok := parseNetmask(mask)
		if !ok || n > maxBits {
			return fmt.Errorf("bad prefix length")
		}
		h.bits = n
	}
	return nil
}

// parseIPv4 is iproute2's get_addr_ipv4: up to four strtoul parts (base
// 0), each at most 255, filled from the left.
func parseIPv4(s string) ([4]byte, bool) {
	var b [4]byte
	for i := 0; i < 4; i++ {
		n, rest, ok := strtoul(s)
		if !ok || n > 255 {
			return b, false
		}
		b[i] = byte(n)
		if rest == "" {
			return b, true
		}
		if i == 3 || rest[0] != '.' {
			return b, false
		}
		s = rest[1:]
	}
	return b, false
}

// parseNetmask is get_netmask: a number, or a dotted mask made of ones
// then zeros.
func parseNetmask(s string) (int, bool) {
	if n, rest, ok := strtoul(s); ok && rest == "" {
		if n > 1<<32-1 {
			return 0, false
		}
		return int(min(n, 1<<31)), true
	}
	if s == "any" || s == "all" || s == "default" {
		return 0, true // get_addr_1 reads these as 0.0.0.0: mask /0
	}
	m, ok := parseIPv4(s)
	if !ok {
		return 0, false
	}
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	n := 0
	for v&(1<<31) != 0 {
		v <<= 1
		n++
	}
	if v != 0 {
		return 0, false
	}
	return n, true
}

// strtoul parses what C's strtoul(s, &end, 0) does at the start of s:
// optional sign, then 0x hex, 0 octal or decimal. ok is false when no
// digit was read. Overflow saturates, which is enough to fail range checks.
func strtoul(s string) (n uint64, rest string, ok bool) {
	i := 0
	for i < len(s) && strings.IndexByte(" \t\n\v\f\r", s[i]) >= 0 {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	base := uint64(10)
	if i+1 < len(s) && s[i] == '0' && (s[i+1] == 'x' || s[i+1] == 'X') && i+2 < len(s) && isDigit(s[i+2], 16) {
		base = 16
		i += 2
	} else if i < len(s) && s[i] == '0' {
		base = 8
	}
	start := i
	for i < len(s) && isDigit(s[i], base) {
		d := digitVal(s[i])
		if n > (1<<64-1-d)/base {
			n = 1<<64 - 1
		} else {
			n = n*base + d
		}
		i++
	}
	if i == start {
		return 0, s, false
	}
	if neg && n != 0 {
		n = -n // C's unsigned negation: huge, so any range check fails
	}
	return n, s[i:], true
}

func digitVal(c byte) uint64 {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0')
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10
	}
	return 99
}

func isDigit(c byte, base uint64) bool { return digitVal(c) < base }

// strtol is C's strtol(s, &end, 0) prefix parse, as a signed value
// saturated to int64.
func strtol(s string) (n int64, rest string, ok bool) {
	t := strings.TrimLeft(s, " \t\n\v\f\r")
	neg := strings.HasPrefix(t, "-")
	if neg || strings.HasPrefix(t, "+") {
		t = t[1:]
	}
	if strings.HasPrefix(t, "+") || strings.HasPrefix(t, "-") {
		return 0, s, false // only one sign
	}
	u, rest, ok := strtoul(t)
	if !ok {
		return 0, s, false
	}
	if u > 1<<63-1 {
		u = 1 << 63
	}
	n = int64(u)
	if neg {
		n = -n
	}
	return n, rest, true
}

// getInteger is iproute2's get_integer: a whole-string strtol (base 0)
// that fits an int.
func getInteger(s string) (int, bool) {
	n, rest, ok := strtol(s)
	if !ok || rest != "" || n > 1<<31-1 || n < -1<<31 {
		return 0, false
	}
	return int(n), true
}

// parseMarkMask is ss's sscanf("%i/%i") or sscanf("%i"): trailing junk
// after the last number is ignored, and values wrap to 32 bits.
func parseMarkMask(s string) (mark, mask uint32, ok bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		m, rest, ok1 := strtol(s)
		if !ok1 || !strings.HasPrefix(rest, "/") {
			return 0, 0, false
		}
		k, _, ok2 := strtol(rest[1:])
		if !ok2 {
			return 0, 0, false
		}
		return uint32(m), uint32(k), true
	}
	m, _, ok1 := strtol(s)
	if !ok1 {
		return 0, 0, false
	}
	return uint32(m), 0xffffffff, true
}
