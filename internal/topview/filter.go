package topview

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/tracer"
)

// matcher reads a filter typed in top: a pid ("4242"), a local port
// (":8080") or a command name ("nginx"). Empty matches everything.
type matcher struct {
	pid  uint64
	port uint64
	comm string
}

func parseFilter(s string) matcher {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutPrefix(s, ":"); ok {
		if n, err := strconv.ParseUint(p, 10, 16); err == nil {
			return matcher{port: n}
		}
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return matcher{pid: n}
	}
	return matcher{comm: s}
}

func (m matcher) empty() bool { return m.pid == 0 && m.port == 0 && m.comm == "" }

func filterProcesses(procs []closewait.Process, filter string) []closewait.Process {
	m := parseFilter(filter)
	if m.empty() {
		return procs
	}
	var out []closewait.Process
	for _, p := range procs {
		switch {
		case m.pid != 0 && uint64(p.PID) != m.pid,
			m.comm != "" && p.Comm != m.comm,
			m.port != 0 && !slices.ContainsFunc(p.Ports, func(pc closewait.PortCount) bool { return uint64(pc.Port) == m.port }):
			continue
		}
		out = append(out, p)
	}
	return out
}

func filterListeners(ls []Listener, filter string) []Listener {
	m := parseFilter(filter)
	if m.empty() {
		return ls
	}
	var out []Listener
	for _, l := range ls {
		switch {
		case m.pid != 0 && uint64(l.PID) != m.pid &&
			!slices.ContainsFunc(l.Holders, func(h tracer.Holder) bool { return uint64(h.PID) == m.pid }),
			m.comm != "" && l.Comm != m.comm,
			m.port != 0 && uint64(l.Local.Port()) != m.port:
			continue
		}
		out = append(out, l)
	}
	return out
}

func sortProcesses(procs []closewait.Process, by SortKey) []closewait.Process {
	out := slices.Clone(procs)
	slices.SortStableFunc(out, func(a, b closewait.Process) int {
		switch by {
		case ByGrowth:
			return cmp.Compare(b.GrowthPerMin, a.GrowthPerMin)
		case ByOldest:
			return cmp.Compare(b.Oldest, a.Oldest)
		}
		return cmp.Compare(b.Count, a.Count)
	})
	return out
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

// Select is what a view of f shows: the CLOSE_WAIT holders sorted by by,
// and both they and the listeners narrowed to filter (a pid, a command
// name, or :port, as typed in top).
func (f *Frame) Select(by SortKey, filter string) ([]closewait.Process, []Listener) {
	return sortProcesses(filterProcesses(f.CloseWait.Processes, filter), by), filterListeners(f.Listeners, filter)
}
