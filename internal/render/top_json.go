package render

import (
	"time"

	"github.com/socklife/socklife/internal/topview"

	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/tracer"
)

// FrameJSON is one interval of `top -o json`; README documents the keys.
type FrameJSON struct {
	Time         time.Time      `json:"time"`
	IntervalMs   int64          `json:"interval_ms"`
	States       map[string]int `json:"states"`
	Delta        map[string]int `json:"delta"`
	EventsPerSec float64        `json:"events_per_sec"`
	Lost         uint64         `json:"lost"`
	LostBy       LossJSON       `json:"lost_by"`
	Resyncs      uint64         `json:"resyncs"`
	Hooks        []string       `json:"hooks"`
	CloseWait    CloseWaitJSON  `json:"close_wait"`
	Listeners    []ListenerJSON `json:"listeners"`
}

// CloseWaitJSON is the CLOSE_WAIT picture.
type CloseWaitJSON struct {
	Total     int                    `json:"total"`
	Processes []CloseWaitProcessJSON `json:"processes"`
}

// CloseWaitProcessJSON is one process's CLOSE_WAIT sockets; pid 0 is "owner unknown".
type CloseWaitProcessJSON struct {
	PID  uint32 `json:"pid"`
	Comm string `json:"comm"`
	// Processes is how many processes the row stands for: 1, or with --by
	// container or pod, all of the group's (pid and comm name the busiest).
	Processes int            `json:"processes"`
	Container *ContainerJSON `json:"container,omitempty"`
	Count     int            `json:"count"`
	// GrowthPerMin is null until enough history (closewait.MinGrowthSpan).
	GrowthPerMin *float64 `json:"growth_per_min"`
	OldestMs     int64    `json:"oldest_ms"`
	// OldestIsLowerBound: the oldest socket predates socklife, so its age
	// is at least oldest_ms.
	OldestIsLowerBound bool       `json:"oldest_is_lower_bound"`
	Ports              []PortJSON `json:"ports"`
	Peers              []PeerJSON `json:"peers"`
}

// PortJSON counts sockets on one local port.
type PortJSON struct {
	Port  uint16 `json:"port"`
	Count int    `json:"count"`
}

// PeerJSON counts sockets to one remote address.
type PeerJSON struct {
	Peer  string `json:"peer"`
	Count int    `json:"count"`
}

// ListenerJSON is one listener and its accept queue.
type ListenerJSON struct {
	NetnsName     string         `json:"netns_name,omitempty"`
	Netns         uint32         `json:"netns"`
	Local         string         `json:"local"`
	PID           uint32         `json:"pid"`
	Comm          string         `json:"comm"`
	Holders       []HolderJSON   `json:"holders"`
	Container     *ContainerJSON `json:"container,omitempty"`
	QueueLen      uint32         `json:"queue_len"`
	Backlog       uint32         `json:"backlog"`
	AcceptsPerSec float64        `json:"accepts_per_sec"`
}

// HolderJSON is one process holding a listener.
type HolderJSON struct {
	PID     uint32 `json:"pid"`
	Comm    string `json:"comm"`
	Accepts bool   `json:"accepts"`
}

// HoldersJSON converts a listener's holders, as top and backlog print them.
func HoldersJSON(hs []tracer.Holder) []HolderJSON {
	out := make([]HolderJSON, len(hs))
	for i, h := range hs {
		out[i] = HolderJSON(h)
	}
	return out
}

// ToJSON converts a frame; v's filter applies as on screen.
func FrameToJSON(f *topview.Frame, v View) FrameJSON {
	procs, ls := f.Select(v.Sort, v.Filter)
	j := FrameJSON{
		Time: f.At, IntervalMs: f.Interval.Milliseconds(),
		States: map[string]int{}, Delta: map[string]int{},
		EventsPerSec: f.EventsPerSec, Lost: f.Lost, LostBy: lossJSON(f.Loss), Resyncs: f.Resyncs, Hooks: f.Hooks,
		CloseWait: CloseWaitJSON{Total: f.CloseWait.Total, Processes: ProcessesJSON(procs)},
		Listeners: []ListenerJSON{},
	}
	if j.Hooks == nil {
		j.Hooks = []string{}
	}
	for _, st := range headerStates {
		j.States[st.KernelName()] = f.States[st]
		j.Delta[st.KernelName()] = f.Delta[st]
	}
	for _, l := range ls {
		j.Listeners = append(j.Listeners, ListenerJSON{Netns: l.Netns, NetnsName: v.Names.NetnsName(l.Netns), Local: l.Local.String(), PID: l.PID, Comm: l.Comm,
			Holders: HoldersJSON(l.Holders), Container: ContainerToJSON(l.Container, l.InContainer), QueueLen: l.QueueLen, Backlog: l.Backlog, AcceptsPerSec: l.AcceptsPerSec})
	}
	return j
}

// ProcessesJSON converts CLOSE_WAIT processes, as top and closewait print them.
func ProcessesJSON(procs []closewait.Process) []CloseWaitProcessJSON {
	out := []CloseWaitProcessJSON{}
	for _, p := range procs {
		pj := CloseWaitProcessJSON{PID: p.PID, Comm: p.Comm, Processes: p.Processes,
			Container: ContainerToJSON(p.Container, p.InContainer), Count: p.Count,
			OldestMs: p.Oldest.Milliseconds(), OldestIsLowerBound: p.OldestAtLeast, Ports: []PortJSON{}, Peers: []PeerJSON{}}
		if p.GrowthKnown {
			pj.GrowthPerMin = &p.GrowthPerMin
		}
		for _, pc := range p.Ports {
			pj.Ports = append(pj.Ports, PortJSON(pc))
		}
		for _, pc := range p.Peers {
			pj.Peers = append(pj.Peers, PeerJSON{Peer: pc.Peer.String(), Count: pc.Count})
		}
		out = append(out, pj)
	}
	return out
}
