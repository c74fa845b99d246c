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

// appendTime appends t in timeLayout, quoted.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, timeLayout)
	return append(b, '"')
}

// appendFlow appends the JSON keys that place a socket, the same in every
// command's lines: "netns", "family", "local", "remote" (ss's address forms).
func appendFlow(b []byte, netns uint32, family uint8, local, remote netip.AddrPort) []byte {
	b = append(b, `"netns":`...)
	b = strconv.AppendUint(b, uint64(netns), 10)
	b = append(b, `,"family":"`...)
	b = append(b, FamilyName(family)...)
	b = append(b, `","local":"`...)
	b = local.AppendTo(b)
	b = append(b, `","remote":"`...)
	b = remote.AppendTo(b)
	return append(b, '"')
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
