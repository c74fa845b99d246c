package render

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/socklife/socklife/internal/backlog"
	"github.com/socklife/socklife/internal/topview"

	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/internal/tcpstate"
)

// headerStates are the states the header counts, in the order a reader
// scans them: the healthy bulk, the handshakes, the closes.
var headerStates = []tcpstate.State{
	tcpstate.Established, tcpstate.SynSent, tcpstate.SynRecv, tcpstate.Listen,
	tcpstate.FinWait1, tcpstate.FinWait2, tcpstate.Closing, tcpstate.LastAck,
	tcpstate.CloseWait, tcpstate.TimeWait,
}

// View is how a frame is drawn: the sort order and a text filter (a pid,
// a command name, or :port) typed by the user, and the screen it must fit.
type View struct {
	Sort   topview.SortKey
	By     closewait.Group // what a CLOSE-WAIT row stands for
	Filter string
	Rows   int // CLOSE_WAIT and listener rows at most; 0: all
	// Height and Width are the lines and columns WriteTop may fill (a
	// terminal's, less what the caller adds); 0: no limit. The header and
	// the CLOSE_WAIT section come first; the listeners get what is left,
	// and a section cut short says how many rows it left out.
	Height, Width int
	// Paused marks the frame as the one top stopped on.
	Paused bool
	// Names names namespaces (may be nil).
	Names *Names
}

// WriteTop draws f as plain text, the same on a terminal and in a pipe.
func WriteTop(w io.Writer, f *topview.Frame, v View) error {
	var head strings.Builder
	fmt.Fprintf(&head, "socklife top  %s", f.At.Format("15:04:05"))
	if v.Paused {
		head.WriteString("  PAUSED (space resumes)")
	}
	if f.Interval > 0 {
		fmt.Fprintf(&head, "  every %s", f.Interval.Round(time.Millisecond))
	}
	fmt.Fprintf(&head, "  events/s %.0f  lost %d%s  resyncs %d  hooks %s\n", f.EventsPerSec, f.Lost, appendLoss(nil, f.Loss), f.Resyncs, termString(strings.Join(f.Hooks, " ")))
	for i, st := range headerStates {
		if i == 5 {
			head.WriteString("\n")
		} else if i > 0 {
			head.WriteString("  ")
		}
		fmt.Fprintf(&head, "%s %d", st, f.States[st])
		if d := f.Delta[st]; d != 0 {
			fmt.Fprintf(&head, " (%+d)", d)
		}
	}
	head.WriteString("\n")
	const note = "TIME-WAIT is normal: the closing side keeps each connection there for 60 s.\n"

	procs, ls := f.Select(v.Sort, v.Filter)
	procs, ls = limit(procs, v.Rows), limit(ls, v.Rows)
	lay := fit(v.Height, len(procs), len(ls))

	var b bytes.Buffer
	b.WriteString(head.String())
	if lay.note {
		b.WriteString(note)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "CLOSE-WAIT by %s, by %s: %s waiting for their owner's close()\n", v.By, v.Sort, plural(f.CloseWait.Total, "socket"))
	if lay.procs > 0 || len(procs) == 0 {
		if err := WriteCloseWait(&b, procs[:lay.procs]); err != nil {
			return err
		}
	}
	more(&b, len(procs)-lay.procs, "process")
	b.WriteString("\nListeners, fullest accept queue first:\n")
	if lay.listeners > 0 || len(ls) == 0 {
		if err := writeListeners(&b, ls[:lay.listeners]); err != nil {
			return err
		}
	}
	more(&b, len(ls)-lay.listeners, "listener")
	_, err := w.Write(clip(b.Bytes(), v.Width))
	return err
}

// more says how many rows a section left out.
func more(b *bytes.Buffer, n int, noun string) {
	if n > 0 {
		fmt.Fprintf(b, "... %s more (f filters, --rows)\n", plural(n, noun))
	}
}

// layout is how many rows each section shows, and whether the TIME-WAIT
// note fits.
type layout struct {
	procs, listeners int
	note             bool
}

// fit shares height lines among the sections: the header (two lines of
// counts and a title), the CLOSE_WAIT section (its title, a table header or
// "none") and the listeners (a blank line, title, header or "none") always;
// then as many CLOSE_WAIT rows as fit with at least half of what remains,
// the listeners the rest; a section cut short gives a row to its "... N
// more" line. The TIME-WAIT note comes only when everything else fits.
func fit(height, procs, listeners int) layout {
	if height <= 0 {
		return layout{procs, listeners, true}
	}
	const fixed = 3 + 1 + 2 + 3 // header, blank, CLOSE_WAIT title+header, blank+listeners title+header
	avail := max(height-fixed, 0)
	if procs+listeners+1 <= avail {
		return layout{procs, listeners, true}
	}
	if procs+listeners <= avail {
		return layout{procs, listeners, false}
	}
	// CLOSE_WAIT first: at least half, more when the listeners need less
	cw := min(procs, max((avail+1)/2, avail-listeners))
	if cw < procs {
		cw = max(cw-1, 0) // its "... N more" line
	}
	rest := avail - cw - boolInt(cw < procs)
	ln := min(listeners, rest)
	if ln < listeners {
		ln = max(ln-1, 0)
	}
	return layout{cw, ln, false}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// clip cuts every line of b to width bytes (a terminal would wrap a longer
// one onto rows the layout did not count); 0 keeps them whole.
func clip(b []byte, width int) []byte {
	if width <= 0 {
		return b
	}
	out := b[:0:0]
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) > width {
			line = line[:width]
		}
		out = append(append(out, line...), '\n')
	}
	return out
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
	cols := []Column{{Title: "PID", Right: true}, {Title: "COMM"}}
	containers := anyContainer(len(procs), func(i int) bool { return procs[i].InContainer })
	if containers {
		cols = append(cols, Column{Title: "CONTAINER"}, Column{Title: "POD"})
	}
	cols = append(cols, Column{Title: "COUNT", Right: true},
		Column{Title: "GROWTH/MIN", Right: true}, Column{Title: "OLDEST", Right: true}, Column{Title: "PORTS"}, Column{Title: "PEERS"})
	return WriteTable(w, cols, len(procs), func(i int, buf []byte, ends []int) ([]byte, []int) {
		p := &procs[i]
		cell := func() { ends = append(ends, len(buf)) }
		buf = appendPIDs(buf, p.PID, p.Processes)
		cell()
		buf = appendTerm(buf, orDash(p.Comm))
		cell()
		if containers {
			buf = appendContainerCells(buf, &ends, p.Container, p.InContainer)
		}
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

func writeListeners(w io.Writer, ls []topview.Listener) error {
	if len(ls) == 0 {
		_, err := io.WriteString(w, "none\n")
		return err
	}
	cols := []Column{{Title: "LOCAL"}, {Title: "PID", Right: true}, {Title: "COMM"}}
	containers := anyContainer(len(ls), func(i int) bool { return ls[i].InContainer })
	if containers {
		cols = append(cols, Column{Title: "CONTAINER"}, Column{Title: "POD"})
	}
	cols = append(cols, Column{Title: "QUEUE/BACKLOG", Right: true}, Column{Title: "ACCEPTS/S", Right: true})
	return WriteTable(w, cols, len(ls), func(i int, buf []byte, ends []int) ([]byte, []int) {
		l := &ls[i]
		buf = l.Local.AppendTo(buf)
		ends = append(ends, len(buf))
		buf = appendPIDs(buf, l.PID, len(l.Holders))
		ends = append(ends, len(buf))
		buf = appendTerm(buf, orDash(l.Comm))
		ends = append(ends, len(buf))
		if containers {
			buf = appendContainerCells(buf, &ends, l.Container, l.InContainer)
		}
		buf = strconv.AppendUint(buf, uint64(l.QueueLen), 10)
		buf = append(buf, '/')
		buf = strconv.AppendUint(buf, uint64(l.Backlog), 10)
		if backlog.QueueFull(l.QueueLen, l.Backlog) {
			buf = append(buf, " FULL"...)
		}
		ends = append(ends, len(buf))
		buf = strconv.AppendFloat(buf, l.AcceptsPerSec, 'f', 1, 64)
		return buf, append(ends, len(buf))
	})
}

// appendPIDs writes a row's process: its pid, "+N" when the row stands for
// N more processes (a listener's other holders, a container's other
// processes), "-" when the owner is unknown.
func appendPIDs(buf []byte, pid uint32, procs int) []byte {
	if pid == 0 {
		return append(buf, '-')
	}
	buf = strconv.AppendUint(buf, uint64(pid), 10)
	if procs > 1 {
		buf = append(buf, '+')
		buf = strconv.AppendUint(buf, uint64(procs-1), 10)
	}
	return buf
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
