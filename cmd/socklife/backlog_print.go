package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/socklife/socklife/internal/backlog"
	"github.com/socklife/socklife/internal/output"
)

// backlogPrinter writes each interval's report and keeps the counts --for
// decides its exit status by.
type backlogPrinter struct {
	out     io.Writer
	json    bool
	clear   bool // redraw in place: a terminal
	stalled int  // stall begin events so far
	dropped uint64
}

func (p *backlogPrinter) print(r *backlog.Report) error {
	for _, s := range r.Stalls {
		if s.Begin {
			p.stalled++
		}
	}
	for _, l := range r.Listeners {
		p.dropped += l.Drops
	}
	if p.json {
		b, err := json.Marshal(jsonReport(r))
		if err != nil {
			return err
		}
		_, err = p.out.Write(append(b, '\n'))
		return err
	}
	return p.table(r)
}

var backlogColumns = []output.Column{
	{Title: "LISTEN"}, {Title: "NETNS"}, {Title: "PID"}, {Title: "COMM"},
	{Title: "QUEUE", Right: true}, {Title: "PEAK", Right: true}, {Title: "BACKLOG", Right: true},
	{Title: "FULL%", Right: true}, {Title: "SYNQ", Right: true}, {Title: "ACCEPTS", Right: true},
	{Title: "P50ms", Right: true}, {Title: "P90ms", Right: true}, {Title: "P99ms", Right: true},
	{Title: "MAXms", Right: true}, {Title: "DROPS", Right: true}, {Title: "SYNACK", Right: true},
	{Title: "STALLED"},
}

func (p *backlogPrinter) table(r *backlog.Report) error {
	var b []byte
	if p.clear {
		b = append(b, "\x1b[H\x1b[2J"...)
	}
	b = r.End.AppendFormat(b, "15:04:05")
	b = fmt.Appendf(b, "  %d listeners", len(r.Listeners))
	for _, ns := range r.Netns {
		b = fmt.Appendf(b, "  netns %d: ListenOverflows +%d ListenDrops +%d", ns.Netns, ns.ListenOverflows, ns.ListenDrops)
	}
	if r.Lost > 0 {
		b = fmt.Appendf(b, "  (%d events lost)", r.Lost)
	}
	b = append(b, '\n')
	for _, s := range r.Stalls {
		b = appendStall(b, s)
	}
	if _, err := p.out.Write(b); err != nil {
		return err
	}
	ls := r.Listeners
	err := output.WriteTable(p.out, backlogColumns, len(ls), func(i int, buf []byte, ends []int) ([]byte, []int) {
		l := &ls[i]
		cell := func(s []byte) { buf = s; ends = append(ends, len(buf)) }
		cell(l.Local.AppendTo(buf))
		cell(strconv.AppendUint(buf, uint64(l.Netns), 10))
		if l.PID != 0 {
			cell(strconv.AppendUint(buf, uint64(l.PID), 10))
			cell(append(buf, l.Comm...))
		} else {
			cell(append(buf, '-'))
			cell(append(buf, '-'))
		}
		for _, v := range []uint64{uint64(l.Queue), uint64(l.Peak), uint64(l.Backlog)} {
			cell(strconv.AppendUint(buf, v, 10))
		}
		cell(strconv.AppendFloat(buf, 100*l.FullFraction, 'f', 1, 64))
		cell(strconv.AppendUint(buf, uint64(l.SynQueue), 10))
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
			cell(append(buf, l.StalledFor.Round(time.Millisecond).String()...))
		} else {
			cell(append(buf, '-'))
		}
		return buf, ends
	})
	if err != nil {
		return err
	}
	_, err = io.WriteString(p.out, "\n")
	return err
}

func appendStall(b []byte, s backlog.StallEvent) []byte {
	b = s.Time.AppendFormat(b, "15:04:05.000")
	if s.Begin {
		b = fmt.Appendf(b, " stall begin %s pid %d (%s): queue not empty, no accept() for %v\n",
			s.Local, s.PID, s.Comm, s.For.Round(time.Millisecond))
	} else {
		b = fmt.Appendf(b, " stall end   %s pid %d (%s): stalled %v\n",
			s.Local, s.PID, s.Comm, s.For.Round(time.Millisecond))
	}
	return b
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
