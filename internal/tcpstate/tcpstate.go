// Package tcpstate names the kernel's TCP socket states the way ss(8) does and
// parses the state filters ss accepts, so that snapshot, trace and record all
// speak the same vocabulary.
package tcpstate

import (
	"fmt"
	"sort"
	"strings"
)

// State is a socket state as the kernel numbers it (include/net/tcp_states.h).
// sock_diag reports UDP and Unix sockets with the same numbers: a bound but
// unconnected datagram socket is Close, which ss prints as UNCONN.
type State uint8

const (
	Established State = 1 + iota
	SynSent
	SynRecv
	FinWait1
	FinWait2
	TimeWait
	Close
	CloseWait
	LastAck
	Listen
	Closing
	NewSynRecv
	// Max is one past the last state; states are < Max.
	Max
)

// Known reports whether the kernel has a state numbered s: anything else
// from the kernel (a newer one, a corrupt record) must not index a table
// sized Max.
func (s State) Known() bool { return s >= Established && s < Max }

// ssNames are the column names ss prints.
var ssNames = [Max]string{
	Established: "ESTAB",
	SynSent:     "SYN-SENT",
	SynRecv:     "SYN-RECV",
	FinWait1:    "FIN-WAIT-1",
	FinWait2:    "FIN-WAIT-2",
	TimeWait:    "TIME-WAIT",
	Close:       "UNCONN",
	CloseWait:   "CLOSE-WAIT",
	LastAck:     "LAST-ACK",
	Listen:      "LISTEN",
	Closing:     "CLOSING",
	NewSynRecv:  "NEW-SYN-RECV",
}

// kernelNames are the names the kernel's own tracepoints print
// (TCP_ESTABLISHED without the prefix); tcpstates users know these.
var kernelNames = [Max]string{
	Established: "ESTABLISHED",
	SynSent:     "SYN_SENT",
	SynRecv:     "SYN_RECV",
	FinWait1:    "FIN_WAIT1",
	FinWait2:    "FIN_WAIT2",
	TimeWait:    "TIME_WAIT",
	Close:       "CLOSE",
	CloseWait:   "CLOSE_WAIT",
	LastAck:     "LAST_ACK",
	Listen:      "LISTEN",
	Closing:     "CLOSING",
	NewSynRecv:  "NEW_SYN_RECV",
}

// String returns the name ss prints in its State column.
func (s State) String() string {
	if s < Max && ssNames[s] != "" {
		return ssNames[s]
	}
	return fmt.Sprintf("STATE-%d", uint8(s))
}

// KernelName returns the kernel's name for the state (CLOSE_WAIT, not CLOSE-WAIT),
// as tcpstates and the tracepoint's own format print it.
func (s State) KernelName() string {
	if s < Max && kernelNames[s] != "" {
		return kernelNames[s]
	}
	return fmt.Sprintf("STATE_%d", uint8(s))
}

// Mask is a set of states, bit 1<<state, the layout of inet_diag_req_v2.idiag_states.
type Mask uint32

// All holds every state.
const All Mask = 1<<Max - 2

// Has reports whether s is in m.
func (m Mask) Has(s State) bool { return m&(1<<s) != 0 }

// Of builds a mask from states.
func Of(states ...State) Mask {
	var m Mask
	for _, s := range states {
		m |= 1 << s
	}
	return m
}

// The groups ss(8) names (ss(8), "STATE-FILTER"): connected is every state
// but LISTEN and CLOSE; synchronized leaves out SYN-SENT too; bucket is
// what lives in minisocks (SYN-RECV, TIME-WAIT), big the rest.
var (
	Connected    = All &^ Of(Listen, Close)
	Synchronized = Connected &^ Of(SynSent)
	Bucket       = Of(SynRecv, NewSynRecv, TimeWait)
	Big          = All &^ Bucket
	// Default is what ss shows with neither -a nor -l: connected sockets
	// without the minisocks.
	Default = Connected &^ Bucket
	// Listening is what ss -l selects: listeners and unconnected (bound)
	// datagram sockets.
	Listening = Of(Listen, Close)
)

// filterNames maps every name ss accepts after "state" to its mask.
var filterNames = map[string]Mask{
	"established":  Of(Established),
	"syn-sent":     Of(SynSent),
	"syn-recv":     Of(SynRecv, NewSynRecv),
	"fin-wait-1":   Of(FinWait1),
	"fin-wait-2":   Of(FinWait2),
	"time-wait":    Of(TimeWait),
	"closed":       Of(Close),
	"unconnected":  Of(Close),
	"close-wait":   Of(CloseWait),
	"last-ack":     Of(LastAck),
	"listening":    Of(Listen),
	"closing":      Of(Closing),
	"all":          All,
	"connected":    Connected,
	"synchronized": Synchronized,
	"bucket":       Bucket,
	"big":          Big,
}

// aliases accept the spellings of the kernel (tcpstates, JSON output) and of
// ss's State column, so a value copied from any socklife output filters.
var aliases = map[string]string{
	"estab":     "established",
	"listen":    "listening",
	"close":     "closed",
	"unconn":    "closed",
	"fin-wait1": "fin-wait-1",
	"fin-wait2": "fin-wait-2",
}

// FilterNames lists the names ParseFilter accepts, sorted.
func FilterNames() []string {
	names := make([]string, 0, len(filterNames))
	for n := range filterNames {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseFilter turns ss state-filter names into one mask. Names are matched
// case-insensitively and "_" is accepted for "-" (close_wait, time_wait), since
// people type the kernel's spelling as often as ss's.
func ParseFilter(names []string) (Mask, error) {
	var m Mask
	for _, name := range names {
		key := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "-")
		if full, ok := aliases[key]; ok {
			key = full
		}
		bits, ok := filterNames[key]
		if !ok {
			return 0, fmt.Errorf("unknown state %q (valid: %s)", name, strings.Join(FilterNames(), ", "))
		}
		m |= bits
	}
	return m, nil
}

// States lists the states in m in kernel order.
func (m Mask) States() []State {
	var out []State
	for s := Established; s < Max; s++ {
		if m.Has(s) {
			out = append(out, s)
		}
	}
	return out
}
