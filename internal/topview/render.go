package topview

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/internal/output"
	"github.com/socklife/socklife/internal/tcpstate"
)

// headerStates are the states the header counts, in the order a reader
// scans them: the healthy bulk, the handshakes, the closes.
var headerStates = []tcpstate.State{
	tcpstate.Established, tcpstate.SynSent, tcpstate.SynRecv, tcpstate.Listen,
	tcpstate.FinWait1, tcpstate.FinWait2, tcpstate.Closing, tcpstate.LastAck,
	tcpstate.CloseWait, tcpstate.TimeWait,
}

// SortKey orders the CLOSE_WAIT table.
type SortKey int

const (
	ByCount SortKey = iota
	ByGrowth
	ByOldest
)

func (k SortKey) String() string {
	return [...]string{"count", "growth", "oldest"}[k]
}

// View is how a frame is drawn: the sort order and a text filter (a pid,
// a command name, or :port) typed by the user.
type View struct {
	Sort   SortKey
	Filter string
	Rows   int // CLOSE_WAIT and listener rows at most; 0: all
}

// WriteText draws f as plain text, the same on a terminal and in a pipe.
func WriteText(w io.Writer, f *Frame, v View) error {
	var b strings.Builder
	fmt.Fprintf(&b, "socklife top  %s", f.At.Format("15:04:05"))
	if f.Interval > 0 {
		fmt.Fprintf(&b, "  every %s", f.Interval.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "  events/s %.0f  lost %d  resyncs %d  hooks %s\n", f.EventsPerSec, f.Lost, f.Resyncs, strings.Join(f.Hooks, " "))
	for i, st := range headerStates {
		if i == 5 {
			b.WriteString("\n")
		} else if i > 0 {
			b.WriteString("  ")
		}
		fmt.Fprintf(&b, "%s %d", st, f.States[st])
		if d := f.Delta[st]; d != 0 {
			fmt.Fprintf(&b, " (%+d)", d)
		}
	}
	b.WriteString("\nTIME-WAIT is normal: the closing side keeps each connection there for 60 s.\n\n")

	procs := sortProcesses(filterProcesses(f.CloseWait.Processes, v.Filter), v.Sort)
	fmt.Fprintf(&b, "CLOSE-WAIT by process (%s; a socket stays here until its owner calls close()), by %s:\n", plural(f.CloseWait.Total, "socket"), v.Sort)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if err := WriteCloseWait(w, limit(procs, v.Rows)); err != nil {
		return err
	}
	ls := filterListeners(f.Listeners, v.Filter)
	if _, err := io.WriteString(w, "\nListeners, fullest accept queue first:\n"); err != nil {
		return err
	}
	return writeListeners(w, limit(ls, v.Rows))
}

func limit[T any](s []T, n int) []T {
	if n > 0 && len(s) > n {
		return s[:n]
	}
	return s
}

// WriteCloseWait writes CLOSE_WAIT processes as a table.
func WriteCloseWait(w io.Writer, procs []closewait.Process) error {
	if len(procs) == 0 {
		_, err := io.WriteString(w, "none\n")
		return err
	}
	cols := []output.Column{{Title: "PID", Right: true}, {Title: "COMM"}, {Title: "COUNT", Right: true},
		{Title: "GROWTH/MIN", Right: true}, {Title: "OLDEST", Right: true}, {Title: "PORTS"}, {Title: "PEERS"}}
	return output.WriteTable(w, cols, len(procs), func(i int, buf []byte, ends []int) ([]byte, []int) {
		p := &procs[i]
		cell := func() { ends = append(ends, len(buf)) }
		if p.PID == 0 {
			buf = append(buf, '-')
		} else {
			buf = strconv.AppendUint(buf, uint64(p.PID), 10)
		}
		cell()
		buf = append(buf, orDash(p.Comm)...)
		cell()
		buf = strconv.AppendInt(buf, int64(p.Count), 10)
		cell()
		if p.GrowthKnown {
			buf = strconv.AppendFloat(buf, p.GrowthPerMin, 'f', 1, 64)
		} else {
			buf = append(buf, '-') // not enough history for a rate yet
		}
		cell()
		buf = AppendAge(buf, p.Oldest, p.OldestAtLeast)
		cell()
		for j, pc := range limit(p.Ports, 3) {
			if j > 0 {
				buf = append(buf, ' ')
			}
			buf = strconv.AppendUint(buf, uint64(pc.Port), 10)
			buf = append(buf, '(')
			buf = strconv.AppendInt(buf, int64(pc.Count), 10)
			buf = append(buf, ')')
		}
		cell()
		for j, pc := range limit(p.Peers, 3) {
			if j > 0 {
				buf = append(buf, ' ')
			}
			buf = pc.Peer.AppendTo(buf)
			buf = append(buf, '(')
			buf = strconv.AppendInt(buf, int64(pc.Count), 10)
			buf = append(buf, ')')
		}
		cell()
		return buf, ends
	})
}

func writeListeners(w io.Writer, ls []Listener) error {
	if len(ls) == 0 {
		_, err := io.WriteString(w, "none\n")
		return err
	}
	cols := []output.Column{{Title: "LOCAL"}, {Title: "PID", Right: true}, {Title: "COMM"},
		{Title: "QUEUE/BACKLOG", Right: true}, {Title: "ACCEPTS/S", Right: true}}
	return output.WriteTable(w, cols, len(ls), func(i int, buf []byte, ends []int) ([]byte, []int) {
		l := &ls[i]
		buf = l.Local.AppendTo(buf)
		ends = append(ends, len(buf))
		if l.PID == 0 {
			buf = append(buf, '-')
		} else {
			buf = strconv.AppendUint(buf, uint64(l.PID), 10)
		}
		ends = append(ends, len(buf))
		buf = append(buf, orDash(l.Comm)...)
		ends = append(ends, len(buf))
		buf = strconv.AppendUint(buf, uint64(l.QueueLen), 10)
		buf = append(buf, '/')
		buf = strconv.AppendUint(buf, uint64(l.Backlog), 10)
		if l.Backlog > 0 && l.QueueLen > l.Backlog {
			buf = append(buf, " FULL"...)
		}
		ends = append(ends, len(buf))
		buf = strconv.AppendFloat(buf, l.AcceptsPerSec, 'f', 1, 64)
		return buf, append(ends, len(buf))
	})
}

// AppendAge writes an age as 850ms, 12s, 4m10s or 2h5m; a lower bound
// (a socket older than the trace) gets a leading ">=".
func AppendAge(buf []byte, d time.Duration, atLeast bool) []byte {
	if atLeast {
		buf = append(buf, ">="...)
	}
	switch {
	case d < time.Second:
		return append(strconv.AppendInt(buf, d.Milliseconds(), 10), "ms"...)
	case d < time.Minute:
		return append(strconv.AppendInt(buf, int64(d/time.Second), 10), 's')
	case d < time.Hour:
		buf = append(strconv.AppendInt(buf, int64(d/time.Minute), 10), 'm')
		return append(strconv.AppendInt(buf, int64(d%time.Minute/time.Second), 10), 's')
	}
	buf = append(strconv.AppendInt(buf, int64(d/time.Hour), 10), 'h')
	return append(strconv.AppendInt(buf, int64(d%time.Hour/time.Minute), 10), 'm')
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
