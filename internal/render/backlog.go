package render

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/socklife/socklife/internal/backlog"
)

// Backlog writes `socklife backlog`'s reports, one per interval: a table
// (redrawn in place on a terminal) or one JSON object a line.
type Backlog struct {
	Out   io.Writer
	JSON  bool
	Clear bool // redraw in place: a terminal
	// Names names namespaces and containers (may be nil).
	Names *Names
}

// Write writes one interval's report.
func (p *Backlog) Write(r *backlog.Report) error {
	if p.JSON {
		b, err := json.Marshal(p.jsonReport(r))
		if err != nil {
			return err
		}
		_, err = p.Out.Write(append(b, '\n'))
		return err
	}
	return p.table(r)
}

// SynFloodLine says what a SYN flood did in one namespace: SYNs that found
// a listener's SYN queue full, answered with cookies or dropped.
func SynFloodLine(netns uint32, n backlog.Netstat) string {
	return fmt.Sprintf("SYN flood in netns %d: %d SYNs found a full SYN queue (%d answered with cookies, %d dropped); SyncookiesSent +%d SyncookiesRecv +%d SyncookiesFailed +%d",
		netns, n.ReqQFullDoCookies+n.ReqQFullDrop, n.ReqQFullDoCookies, n.ReqQFullDrop, n.SyncookiesSent, n.SyncookiesRecv, n.SyncookiesFailed)
}

var (
	backlogColumns = []Column{{Title: "LISTEN"}, {Title: "NETNS"}, {Title: "PID"}, {Title: "COMM"}}
	backlogCounts  = []Column{{Title: "QUEUE", Right: true}, {Title: "PEAK", Right: true}, {Title: "BACKLOG", Right: true},
		{Title: "FULL%", Right: true}, {Title: "SYNQ", Right: true}, {Title: "ACCEPTS", Right: true},
		{Title: "P50ms", Right: true}, {Title: "P90ms", Right: true}, {Title: "P99ms", Right: true},
		{Title: "MAXms", Right: true}, {Title: "DROPS", Right: true}, {Title: "SYNACK", Right: true},
		{Title: "STALLED"},
	}
)

func (p *Backlog) table(r *backlog.Report) error {
	var b []byte
	if p.Clear {
		b = append(b, "\x1b[H\x1b[2J"...)
	}
	b = r.End.AppendFormat(b, "15:04:05")
	b = fmt.Appendf(b, "  %d listeners", len(r.Listeners))
	for _, ns := range r.Netns {
		b = fmt.Appendf(b, "  netns %d: ListenOverflows +%d ListenDrops +%d", ns.Netns, ns.Interval.ListenOverflows, ns.Interval.ListenDrops)
		if t := ns.Total; t.SyncookiesSent+t.SyncookiesRecv+t.SyncookiesFailed+t.ReqQFullDoCookies+t.ReqQFullDrop > 0 {
			b = fmt.Appendf(b, " SyncookiesSent +%d SyncookiesRecv +%d SyncookiesFailed +%d",
				ns.Interval.SyncookiesSent, ns.Interval.SyncookiesRecv, ns.Interval.SyncookiesFailed)
		}
	}
	if r.Lost > 0 {
		b = appendLoss(fmt.Appendf(b, "  %d events lost", r.Lost), r.Loss)
	}
	b = append(b, '\n')
	for _, ns := range r.Netns {
		if ns.SynFlood {
			b = r.End.AppendFormat(b, "15:04:05.000")
			b = append(b, ' ')
			b = append(b, SynFloodLine(ns.Netns, ns.Interval)...)
			b = append(b, '\n')
		}
	}
	for _, s := range r.Stalls {
		b = appendStall(b, s)
	}
	if _, err := p.Out.Write(b); err != nil {
		return err
	}
	ls := r.Listeners
	cols := backlogColumns
	containers := anyContainer(len(ls), func(i int) bool { return ls[i].InContainer })
	if containers {
		cols = append(slices.Clip(cols), Column{Title: "CONTAINER"}, Column{Title: "POD"})
	}
	cols = append(slices.Clip(cols), backlogCounts...)
	err := WriteTable(p.Out, cols, len(ls), func(i int, buf []byte, ends []int) ([]byte, []int) {
		l := &ls[i]
		cell := func(s []byte) { buf = s; ends = append(ends, len(buf)) }
		cell(l.Local.AppendTo(buf))
		cell(appendNetnsCell(buf, p.Names, l.Netns))
		cell(appendPIDs(buf, l.PID, len(l.Holders)))
		cell(appendTerm(buf, orDash(l.Comm)))
		if containers {
			buf = appendContainerCells(buf, &ends, l.Container, l.InContainer)
		}
		for _, v := range []uint64{uint64(l.Queue), uint64(l.Peak), uint64(l.Backlog)} {
			cell(strconv.AppendUint(buf, v, 10))
		}
		cell(strconv.AppendFloat(buf, 100*l.FullFraction, 'f', 1, 64))
		buf = strconv.AppendUint(buf, uint64(l.SynQueue), 10)
		if l.SynQueueFull {
			buf = append(buf, " FULL"...)
		}
		cell(buf)
		cell(strconv.AppendUint(buf, l.Accepts, 10))
		for _, d := range []time.Duration{l.Wait.P50, l.Wait.P90, l.Wait.P99, l.Wait.Max} {
			if l.Wait.Count == 0 {
				cell(append(buf, '-'))
			} else {
				cell(strconv.AppendFloat(buf, msOf(d), 'f', 1, 64))
			}
		}
		cell(strconv.AppendUint(buf, l.Drops, 10))
		cell(strconv.AppendUint(buf, l.SynackRetrans, 10))
		if l.Stalled {
			if l.StalledAtLeast {
				buf = append(buf, ">="...)
			}
			cell(append(buf, l.StalledFor.Round(time.Millisecond).String()...))
		} else {
			cell(append(buf, '-'))
		}
		return buf, ends
	})
	if err != nil {
		return err
	}
	_, err = io.WriteString(p.Out, "\n")
	return err
}

func appendStall(b []byte, s backlog.StallEvent) []byte {
	b = s.Time.AppendFormat(b, "15:04:05.000")
	at := ""
	if s.AtLeast {
		at = ">=" // it began before socklife saw the listener
	}
	if s.Begin {
		b = fmt.Appendf(b, " stall begin %s %s: queue not empty, no accept() for %s%v\n",
			s.Local, stallWho(s), at, s.For.Round(time.Millisecond))
	} else {
		b = fmt.Appendf(b, " stall end   %s %s: stalled %s%v\n",
			s.Local, stallWho(s), at, s.For.Round(time.Millisecond))
	}
	return b
}

// stallWho names who should have accepted: "pid 3121,3122 (nginx)", or
// every holder when none was seen accepting, saying so.
func stallWho(s backlog.StallEvent) string {
	if len(s.Holders) == 0 {
		return "pid - (owner unknown)"
	}
	const most = 4
	var b strings.Builder
	b.WriteString("pid ")
	for i, h := range s.Holders[:min(len(s.Holders), most)] {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(h.PID), 10))
	}
	if n := len(s.Holders) - most; n > 0 {
		fmt.Fprintf(&b, ",+%d", n)
	}
	fmt.Fprintf(&b, " (%s", termString(s.Comm))
	if s.Acceptors == 0 && len(s.Holders) > 1 {
		b.WriteString("; none seen accepting: every holder")
	} else if s.Acceptors == 0 {
		b.WriteString("; not seen accepting")
	}
	b.WriteByte(')')
	return b.String()
}
