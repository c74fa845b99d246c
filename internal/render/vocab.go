package render

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
)

// The vocabulary every command's output shares: one way to write a time,
// a family, a state and a string, whichever command prints them.

// timeLayout is RFC 3339 in UTC with all nine fraction digits, so that
// times sort as strings and every one has nanoseconds.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// msOf is d in milliseconds, the unit of every duration in the output.
func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// appendTime appends t in timeLayout, quoted.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, timeLayout)
	return append(b, '"')
}

// appendFlow appends the JSON keys that place a socket, the same in every
// command's lines: "netns", "family", "local", "remote" (ss's address forms).
// zone is the name of the socket's device, for a link-local address.
func appendFlow(b []byte, netns uint32, family uint8, local, remote netip.AddrPort, zone string) []byte {
	b = append(b, `"netns":`...)
	b = strconv.AppendUint(b, uint64(netns), 10)
	b = append(b, `,"family":"`...)
	b = append(b, FamilyName(family)...)
	b = append(b, `","local":"`...)
	b = appendEndpoint(b, family, local, zone, false)
	b = append(b, `","remote":"`...)
	b = appendEndpoint(b, family, remote, zone, false)
	return append(b, '"')
}

// zoneOf names a connection's device when an address of it is link-local
// IPv6, which means nothing without one; "" otherwise.
func zoneOf(names *Names, netns, ifindex uint32, local, remote netip.AddrPort) string {
	if ifindex == 0 || !local.Addr().IsLinkLocalUnicast() && !remote.Addr().IsLinkLocalUnicast() {
		return ""
	}
	return names.In(netns, ifindex)
}

// appendEndpoint appends ap as every command writes an address
// (appendFamilyAddrPort), a link-local one with its zone: [fe80::1]%eth0:22
// in tables, as ss prints it, and [fe80::1%eth0]:22 in JSON (RFC 4007, as
// netip.ParseAddrPort reads it).
func appendEndpoint(b []byte, family uint8, ap netip.AddrPort, zone string, table bool) []byte {
	if zone == "" || !ap.Addr().IsLinkLocalUnicast() || !ap.Addr().Is6() {
		return appendFamilyAddrPort(b, family, ap)
	}
	if table {
		return AppendAddrPort(b, ap, zone)
	}
	b = append(b, '[')
	b = ap.Addr().WithZone("").AppendTo(b)
	b = append(b, '%')
	quoted := appendJSONString(nil, zone) // an interface name may hold a quote
	b = append(b, quoted[1:len(quoted)-1]...)
	b = append(b, "]:"...)
	return strconv.AppendUint(b, uint64(ap.Port()), 10)
}

// FamilyName names an address family as JSON writes it: "inet", "inet6",
// "unix" (ss's names).
func FamilyName(f uint8) string {
	switch f {
	case unix.AF_INET:
		return "inet"
	case unix.AF_INET6:
		return "inet6"
	case unix.AF_UNIX:
		return "unix"
	}
	return fmt.Sprintf("family-%d", f)
}

// appendFamilyAddrPort appends ap as every command writes an address,
// ss's way: an IPv6 socket talking IPv4 shows the v4-mapped form it has
// ([::ffff:10.0.0.1]:80), as snapshot prints it from sock_diag. The tracer
// hands trace and record such addresses unmapped (the live table matches
// them that way); they are mapped back here, so every command agrees.
func appendFamilyAddrPort(b []byte, family uint8, ap netip.AddrPort) []byte {
	if a := ap.Addr(); family == unix.AF_INET6 && a.Is4() {
		ap = netip.AddrPortFrom(netip.AddrFrom16(a.As16()), ap.Port())
	}
	return ap.AppendTo(b)
}

// stateNames holds every state's name as JSON writes it, the kernel's
// (CLOSE_WAIT): KernelName builds a string for an unknown state, which the
// per-event path cannot afford.
var stateNames = func() (names [256]string) {
	for i := range names {
		names[i] = tcpstate.State(i).KernelName()
	}
	return names
}()

// appendJSONString quotes s for JSON. Command names are whatever a process
// set with prctl: control bytes and invalid UTF-8 included.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendTerm appends s for a terminal table: every name a table prints
// (command names, Unix socket paths, interface names) goes through it. A
// command name is whatever a process set with prctl(PR_SET_NAME), a path
// whatever bind() was given: printed raw, "ok\nFORGED 0.0.0.0" would end
// the row and forge the next one. So the C0 control bytes and DEL become
// \n, \t, \r or \xNN, the C1 controls (U+0080-U+009F, which some terminals
// obey as escape sequences) \u00NN, and a byte that is not valid UTF-8
// \xNN. Everything else, backslash included, is printed as it is, so a
// name made only of printable text reads as ss prints it. (ss 6.1 prints
// process names raw: a newline in a comm breaks its row in two.)
func appendTerm(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
		case r >= 0x80 && r < 0xa0:
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// termString is appendTerm for fmt's %s; s itself when nothing needs escaping.
func termString(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return string(appendTerm(nil, s))
		}
	}
	return s
}
