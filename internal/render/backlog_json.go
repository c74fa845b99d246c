package render

import (
	"time"

	"github.com/socklife/socklife/internal/backlog"
)

// The JSON form of a backlog report: snake_case keys, durations in
// milliseconds; accept_wait_ms is null when nothing was accepted.
type BacklogJSON struct {
	Start     time.Time             `json:"start"`
	End       time.Time             `json:"end"`
	Listeners []BacklogListenerJSON `json:"listeners"`
	Stalls    []BacklogStallJSON    `json:"stalls"`
	Netns     []BacklogNetnsJSON    `json:"netns"`
	Lost      uint64                `json:"lost"`
	LostBy    LossJSON              `json:"lost_by"`
}

type BacklogListenerJSON struct {
	Netns         uint32           `json:"netns"`
	NetnsName     string           `json:"netns_name,omitempty"`
	Inode         uint64           `json:"inode"`
	Local         string           `json:"local"`
	PID           *uint32          `json:"pid"`
	Comm          *string          `json:"comm"`
	Holders       []HolderJSON     `json:"holders"`
	Acceptors     int              `json:"acceptors"`
	Container     *ContainerJSON   `json:"container,omitempty"`
	Backlog       uint32           `json:"backlog"`
	Queue         uint32           `json:"queue"`
	Peak          uint32           `json:"peak"`
	FullFraction  float64          `json:"full_fraction"`
	SynQueue      uint32           `json:"syn_queue"`
	SynPeak       uint32           `json:"syn_peak"`
	SynQueueFull  bool             `json:"syn_queue_full"`
	Enqueues      uint64           `json:"enqueues"`
	Accepts       uint64           `json:"accepts"`
	Wait          *BacklogWaitJSON `json:"accept_wait_ms"`
	WaitTotal     *BacklogWaitJSON `json:"accept_wait_total_ms"`
	Drops         uint64           `json:"drops"`
	DropsTotal    uint64           `json:"drops_total"`
	Synack        uint64           `json:"synack_retransmits"`
	SynackTotal   uint64           `json:"synack_retransmits_total"`
	Stalled       bool             `json:"stalled"`
	StalledMillis *float64         `json:"stalled_ms"`
	// the stall began before socklife saw the listener
	StalledLower bool `json:"stalled_ms_is_lower_bound"`
}

type BacklogWaitJSON struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

type BacklogStallJSON struct {
	Time          time.Time    `json:"time"`
	Event         string       `json:"event"` // begin or end
	Netns         uint32       `json:"netns"`
	Inode         uint64       `json:"inode"`
	Local         string       `json:"local"`
	PID           uint32       `json:"pid"`
	Comm          string       `json:"comm"`
	Holders       []HolderJSON `json:"holders"`
	Acceptors     int          `json:"acceptors"`
	StalledMillis float64      `json:"stalled_ms"`
	StalledLower  bool         `json:"stalled_ms_is_lower_bound"`
}

type BacklogNetnsJSON struct {
	Netns                  uint32 `json:"netns"`
	ListenOverflows        uint64 `json:"listen_overflows"`
	ListenDrops            uint64 `json:"listen_drops"`
	ListenOverflowsTotal   uint64 `json:"listen_overflows_total"`
	ListenDropsTotal       uint64 `json:"listen_drops_total"`
	SyncookiesSent         uint64 `json:"syncookies_sent"`
	SyncookiesRecv         uint64 `json:"syncookies_recv"`
	SyncookiesFailed       uint64 `json:"syncookies_failed"`
	ReqQFullDoCookies      uint64 `json:"reqq_full_do_cookies"`
	ReqQFullDrop           uint64 `json:"reqq_full_drop"`
	SyncookiesSentTotal    uint64 `json:"syncookies_sent_total"`
	ReqQFullDoCookiesTotal uint64 `json:"reqq_full_do_cookies_total"`
	ReqQFullDropTotal      uint64 `json:"reqq_full_drop_total"`
	SynFlood               bool   `json:"syn_flood"`
}

func (p *Backlog) jsonReport(r *backlog.Report) BacklogJSON {
	out := BacklogJSON{Start: r.Start.UTC(), End: r.End.UTC(), Lost: r.Lost, LostBy: lossJSON(r.Loss),
		Listeners: make([]BacklogListenerJSON, len(r.Listeners)), Stalls: make([]BacklogStallJSON, len(r.Stalls)),
		Netns: make([]BacklogNetnsJSON, len(r.Netns))}
	for i, l := range r.Listeners {
		j := BacklogListenerJSON{
			Netns: l.Netns, NetnsName: p.Names.NetnsName(l.Netns), Inode: l.Inode, Local: l.Local.String(),
			Backlog: l.Backlog, Queue: l.Queue, Peak: l.Peak, FullFraction: l.FullFraction,
			SynQueue: l.SynQueue, SynPeak: l.SynPeak, SynQueueFull: l.SynQueueFull, Enqueues: l.Enqueues, Accepts: l.Accepts,
			Holders: HoldersJSON(l.Holders), Acceptors: l.Acceptors, Container: ContainerToJSON(l.Container, l.InContainer),
			Wait: waitOf(l.Wait), WaitTotal: waitOf(l.WaitTotal),
			Drops: l.Drops, DropsTotal: l.DropsTotal, Synack: l.SynackRetrans, SynackTotal: l.SynackRetransTotal,
			Stalled: l.Stalled,
		}
		if l.PID != 0 {
			j.PID, j.Comm = &l.PID, &l.Comm
		}
		if l.Stalled {
			ms := msOf(l.StalledFor)
			j.StalledMillis, j.StalledLower = &ms, l.StalledAtLeast
		}
		out.Listeners[i] = j
	}
	for i, s := range r.Stalls {
		ev := "end"
		if s.Begin {
			ev = "begin"
		}
		out.Stalls[i] = BacklogStallJSON{Time: s.Time.UTC(), Event: ev, Netns: s.Key.Netns, Inode: s.Key.Inode,
			Local: s.Local.String(), PID: s.PID, Comm: s.Comm, Holders: HoldersJSON(s.Holders), Acceptors: s.Acceptors,
			StalledMillis: msOf(s.For), StalledLower: s.AtLeast}
	}
	for i, n := range r.Netns {
		out.Netns[i] = BacklogNetnsJSON{
			Netns: n.Netns, ListenOverflows: n.Interval.ListenOverflows, ListenDrops: n.Interval.ListenDrops,
			ListenOverflowsTotal: n.Total.ListenOverflows, ListenDropsTotal: n.Total.ListenDrops,
			SyncookiesSent: n.Interval.SyncookiesSent, SyncookiesRecv: n.Interval.SyncookiesRecv,
			SyncookiesFailed: n.Interval.SyncookiesFailed, ReqQFullDoCookies: n.Interval.ReqQFullDoCookies,
			ReqQFullDrop: n.Interval.ReqQFullDrop, SyncookiesSentTotal: n.Total.SyncookiesSent,
			ReqQFullDoCookiesTotal: n.Total.ReqQFullDoCookies, ReqQFullDropTotal: n.Total.ReqQFullDrop,
			SynFlood: n.SynFlood,
		}
	}
	return out
}

func waitOf(w backlog.Waits) *BacklogWaitJSON {
	if w.Count == 0 {
		return nil
	}
	return &BacklogWaitJSON{Count: w.Count, P50: msOf(w.P50), P90: msOf(w.P90), P99: msOf(w.P99), Max: msOf(w.Max)}
}
