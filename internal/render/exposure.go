package render

import (
	"fmt"
	"io"
	"strconv"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
)

// ExposureJSON is one line of --exposed.
type ExposureJSON struct {
	Netid     string         `json:"netid"`
	Scope     string         `json:"scope"`
	IP        string         `json:"ip"`
	Interface string         `json:"interface,omitempty"`
	Local     string         `json:"local"`
	LocalPort uint16         `json:"local_port"`
	Netns     uint32         `json:"netns"`
	NetnsName string         `json:"netns_name,omitempty"`
	Processes *[]ProcessJSON `json:"processes,omitempty"`
	Container *ContainerJSON `json:"container,omitempty"`
}

// ExposureToJSON converts one exposure.
func ExposureToJSON(e *snapshot.Exposure, withProcesses bool, names *Names) ExposureJSON {
	s := SocketToJSON(e.Socket, withProcesses, names)
	iface := e.Interface
	if iface == "" {
		iface = s.Interface
	}
	return ExposureJSON{
		Netid: s.Netid, Scope: e.Scope.String(), IP: e.IPVersions(), Interface: iface,
		Local: s.Local, LocalPort: s.LocalPort, Netns: s.Netns, NetnsName: s.NetnsName, Processes: s.Processes,
		Container: s.Container,
	}
}

// WriteExposedTable writes one line per exposed socket.
func WriteExposedTable(w io.Writer, exp []snapshot.Exposure, opts TableOptions, names *Names) error {
	cols := []Column{{Title: "Netid"}, {Title: "Local Address:Port"}, {Title: "Scope"}, {Title: "IP"}, {Title: "Interface"}}
	if opts.Netns {
		cols = append(cols, Column{Title: "Netns", Right: true})
	}
	containers := anyContainer(len(exp), func(i int) bool { _, ok := names.SocketContainer(exp[i].Socket); return ok })
	cols = ownerColumns(cols, containers, opts.Processes)
	return WriteTable(w, cols, len(exp), func(i int, buf []byte, ends []int) ([]byte, []int) {
		e := &exp[i]
		s := e.Socket
		cell := func() { ends = append(ends, len(buf)) }
		buf = append(buf, Netid(s)...)
		cell()
		buf = appendSocketAddr(buf, s, s.Local, names.In(s.Netns, s.Interface), opts.Resolve)
		cell()
		buf = append(buf, e.Scope.String()...)
		cell()
		buf = append(buf, e.IPVersions()...)
		cell()
		switch {
		case e.Interface != "":
			buf = appendTerm(buf, e.Interface)
		case s.Interface != 0:
			buf = appendTerm(buf, names.In(s.Netns, s.Interface))
		case e.Scope == snapshot.Wildcard:
			buf = append(buf, "all"...)
		default:
			buf = append(buf, '-')
		}
		cell()
		if opts.Netns {
			buf = appendNetnsCell(buf, names, s.Netns)
			cell()
		}
		buf = appendOwnerCells(buf, &ends, s, names, containers, opts.Processes)
		return buf, ends
	})
}

// SummaryJSON is --summary's document.
type SummaryJSON struct {
	Total     int                     `json:"total"`
	Protocols map[string]ProtocolJSON `json:"protocols"`
	CloseWait []SummaryCloseWaitJSON  `json:"close_wait_top"`
}

// ProtocolJSON counts one protocol's sockets by state (kernel state names).
type ProtocolJSON struct {
	Total  int            `json:"total"`
	States map[string]int `json:"states"`
}

// SummaryCloseWaitJSON is one process's CLOSE-WAIT count; pid 0 is "owner unknown".
type SummaryCloseWaitJSON struct {
	PID   int32  `json:"pid"`
	Comm  string `json:"comm"`
	Count int    `json:"count"`
}

// SummaryToJSON converts a summary.
func SummaryToJSON(sum *snapshot.Summary) SummaryJSON {
	j := SummaryJSON{Total: sum.Total, Protocols: map[string]ProtocolJSON{}, CloseWait: []SummaryCloseWaitJSON{}}
	for _, pc := range sum.Protocols {
		pj := ProtocolJSON{Total: pc.Total, States: map[string]int{}}
		for st, n := range pc.States {
			if n > 0 {
				pj.States[tcpstate.State(st).KernelName()] = n
			}
		}
		j.Protocols[pc.Protocol.String()] = pj
	}
	for _, c := range sum.CloseWait {
		j.CloseWait = append(j.CloseWait, SummaryCloseWaitJSON(c))
	}
	return j
}

// WriteSummaryTable writes the counts and the CLOSE-WAIT ranking.
func WriteSummaryTable(w io.Writer, sum *snapshot.Summary) error {
	type row struct{ proto, state, count string }
	var rows []row
	for _, pc := range sum.Protocols {
		rows = append(rows, row{pc.Protocol.String(), "total", strconv.Itoa(pc.Total)})
		for st, n := range pc.States {
			if n > 0 {
				rows = append(rows, row{"", tcpstate.State(st).String(), strconv.Itoa(n)})
			}
		}
	}
	if _, err := fmt.Fprintf(w, "Total: %d sockets\n\n", sum.Total); err != nil {
		return err
	}
	cols := []Column{{Title: "Proto"}, {Title: "State"}, {Title: "Count", Right: true}}
	err := WriteTable(w, cols, len(rows), func(i int, buf []byte, ends []int) ([]byte, []int) {
		for _, c := range []string{rows[i].proto, rows[i].state, rows[i].count} {
			buf = append(buf, c...)
			ends = append(ends, len(buf))
		}
		return buf, ends
	})
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, "\nCLOSE-WAIT by process (each waits for its owner to call close()):\n"); err != nil {
		return err
	}
	if len(sum.CloseWait) == 0 {
		_, err := io.WriteString(w, "none\n")
		return err
	}
	cols = []Column{{Title: "PID", Right: true}, {Title: "Command"}, {Title: "CLOSE-WAIT", Right: true}}
	return WriteTable(w, cols, len(sum.CloseWait), func(i int, buf []byte, ends []int) ([]byte, []int) {
		c := sum.CloseWait[i]
		if c.PID == 0 {
			buf = append(buf, '-')
			ends = append(ends, len(buf))
			buf = append(buf, "(owner unknown)"...)
		} else {
			buf = strconv.AppendInt(buf, int64(c.PID), 10)
			ends = append(ends, len(buf))
			buf = appendTerm(buf, c.Comm)
		}
		ends = append(ends, len(buf))
		buf = strconv.AppendInt(buf, int64(c.Count), 10)
		return buf, append(ends, len(buf))
	})
}
