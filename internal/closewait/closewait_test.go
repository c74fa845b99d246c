package closewait

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/container"
)

var t0 = time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)

func conn(pid uint32, comm, local, remote string, since time.Time) Conn {
	return Conn{PID: pid, Comm: comm, Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote), Since: since}
}

func TestObserveGroupsAndRanks(t *testing.T) {
	w := NewWatch(time.Minute)
	conns := []Conn{
		conn(10, "java", "10.0.0.1:8080", "10.0.0.9:5000", t0.Add(-30*time.Second)),
		conn(10, "java", "10.0.0.1:8080", "10.0.0.9:5001", t0.Add(-10*time.Second)),
		conn(10, "java", "10.0.0.1:9090", "10.0.0.7:5002", t0.Add(-5*time.Second)),
		conn(20, "nginx", "10.0.0.1:443", "10.0.0.8:6000", time.Time{}),
	}
	conns[3].AtLeast = t0.Add(-2 * time.Minute)
	rep := w.Observe(t0, conns)
	if rep.Total != 4 || len(rep.Processes) != 2 {
		t.Fatalf("report = %+v", rep)
	}
	java := rep.Processes[0]
	if java.PID != 10 || java.Count != 3 || java.Oldest != 30*time.Second || java.OldestAtLeast {
		t.Errorf("java = %+v, want pid 10, 3 sockets, oldest 30s exact", java)
	}
	if len(java.Ports) != 2 || java.Ports[0] != (PortCount{8080, 2}) || java.Ports[1] != (PortCount{9090, 1}) {
		t.Errorf("java ports = %+v", java.Ports)
	}
	if len(java.Peers) != 2 || java.Peers[0].Peer != netip.MustParseAddr("10.0.0.9") || java.Peers[0].Count != 2 {
		t.Errorf("java peers = %+v", java.Peers)
	}
	nginx := rep.Processes[1]
	if nginx.Oldest != 2*time.Minute || !nginx.OldestAtLeast {
		t.Errorf("nginx oldest = %v (at least: %v), want a 2m lower bound", nginx.Oldest, nginx.OldestAtLeast)
	}
}

func TestGrowthOverSlidingWindow(t *testing.T) {
	w := NewWatch(time.Minute)
	leak := func(n int) []Conn {
		var cs []Conn
		for i := 0; i < n; i++ {
			cs = append(cs, conn(7, "leaky", "127.0.0.1:8080", "127.0.0.1:40000", t0))
		}
		return cs
	}
	tests := []struct {
		after time.Duration
		count int
		want  float64
	}{
		{0, 0, 0},                           // first sample: nothing to compare with
		{10 * time.Second, 5, 30},           // +5 in 10 s
		{30 * time.Second, 15, 30},          // +15 in 30 s
		{60 * time.Second, 30, 30},          // +30 in the full minute
		{90 * time.Second, 30, 15},          // baseline now the 30 s sample (15): +15 in 60 s
		{150 * time.Second, 30, 0},          // flat for a whole window
		{160 * time.Second, 10, -120.0 / 7}, // closed 20 since the 90 s baseline: negative growth
	}
	for _, tt := range tests {
		rep := w.Observe(t0.Add(tt.after), leak(tt.count))
		var got float64
		if len(rep.Processes) > 0 {
			got = rep.Processes[0].GrowthPerMin
		}
		if math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("after %v with %d sockets: growth %v/min, want %v", tt.after, tt.count, got, tt.want)
		}
	}
}

func TestProcessThatClosedEverythingLeaves(t *testing.T) {
	w := NewWatch(time.Minute)
	w.Observe(t0, []Conn{conn(1, "a", "127.0.0.1:1", "127.0.0.1:2", t0)})
	rep := w.Observe(t0.Add(10*time.Second), nil)
	if len(rep.Processes) != 1 || rep.Processes[0].Count != 0 || rep.Processes[0].GrowthPerMin != -6 {
		t.Fatalf("after closing: %+v, want count 0 and growth -6/min", rep.Processes)
	}
	rep = w.Observe(t0.Add(2*time.Minute), nil)
	if len(rep.Processes) != 0 {
		t.Errorf("a minute of zero later the process is still listed: %+v", rep.Processes)
	}
}

func TestOffenders(t *testing.T) {
	rep := Report{Processes: []Process{
		{PID: 1, Count: 50, GrowthPerMin: 0, GrowthKnown: true},
		{PID: 2, Count: 3, GrowthPerMin: 12, GrowthKnown: true},
		{PID: 3, Count: 3, GrowthPerMin: 1, GrowthKnown: true},
		{PID: 4, Count: 3}, // growth not known yet: never an offender by growth
	}}
	tests := []struct {
		l    Limits
		want []uint32
	}{
		{Limits{Count: 50}, []uint32{1}},
		{Limits{GrowthPerMin: 10}, []uint32{2}},
		{Limits{Count: 10, GrowthPerMin: 10}, []uint32{1, 2}},
		{Limits{}, nil},
	}
	for _, tt := range tests {
		got := rep.Offenders(tt.l)
		if len(got) != len(tt.want) {
			t.Errorf("Offenders(%+v) = %+v, want pids %v", tt.l, got, tt.want)
			continue
		}
		for i := range got {
			if got[i].PID != tt.want[i] {
				t.Errorf("Offenders(%+v)[%d] = pid %d, want %d", tt.l, i, got[i].PID, tt.want[i])
			}
		}
	}
}

// A growth rate needs MinGrowthSpan of history (or the window, if
// shorter): two seconds of watching say nothing of a rate per minute.
func TestGrowthKnown(t *testing.T) {
	for _, tc := range []struct {
		window  time.Duration
		watched time.Duration
		known   bool
	}{
		{time.Minute, 2 * time.Second, false},
		{time.Minute, MinGrowthSpan, true},
		{5 * time.Second, 5 * time.Second, true},
		{5 * time.Second, 4 * time.Second, false},
	} {
		w := NewWatch(tc.window)
		w.Observe(t0, nil)
		var conns []Conn
		for i := range 6 {
			conns = append(conns, Conn{PID: 9, Local: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+i))})
		}
		rep := w.Observe(t0.Add(tc.watched), conns)
		p := rep.Processes[0]
		if p.GrowthKnown != tc.known || !tc.known && p.GrowthPerMin != 0 {
			t.Errorf("window %v, watched %v: growth %v known %v, want known %v", tc.window, tc.watched, p.GrowthPerMin, p.GrowthKnown, tc.known)
		}
	}
}

// Grouped by container or pod, a container's processes make one row named
// by the busiest of them, pods gather their containers, and the host's
// processes keep a row each.
func TestObserveGroups(t *testing.T) {
	now := time.Unix(1000, 0)
	podA := container.Pod{UID: "0b5a1c2e-1111-4222-8333-944455556666"}
	web := container.Container{ID: strings.Repeat("a", 64), Pod: podA}
	side := container.Container{ID: strings.Repeat("b", 64), Pod: podA}
	solo := container.Container{ID: strings.Repeat("c", 64)} // docker, no pod
	mk := func(pid uint32, comm string, c container.Container, in bool, port uint16) Conn {
		return Conn{PID: pid, Comm: comm, Container: c, InContainer: in,
			Local: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port), Remote: netip.MustParseAddrPort("10.0.0.2:5000"), Since: now}
	}
	conns := []Conn{
		mk(10, "nginx", web, true, 80), mk(11, "nginx", web, true, 80), mk(11, "nginx", web, true, 80),
		mk(20, "envoy", side, true, 15001),
		mk(30, "redis", solo, true, 6379),
		mk(40, "sshd", container.Container{}, false, 22), mk(41, "cron", container.Container{}, false, 25),
	}
	type row struct {
		pid, n, procs int
		id, pod       string
	}
	for _, tc := range []struct {
		by   Group
		want []row
	}{
		{ByProcess, []row{{11, 2, 1, web.ID, podA.UID}, {10, 1, 1, web.ID, podA.UID}, {20, 1, 1, side.ID, podA.UID}, {30, 1, 1, solo.ID, ""}, {40, 1, 1, "", ""}, {41, 1, 1, "", ""}}},
		{ByContainer, []row{{11, 3, 2, web.ID, podA.UID}, {20, 1, 1, side.ID, podA.UID}, {30, 1, 1, solo.ID, ""}, {40, 1, 1, "", ""}, {41, 1, 1, "", ""}}},
		{ByPod, []row{{11, 4, 3, "", podA.UID}, {30, 1, 1, solo.ID, ""}, {40, 1, 1, "", ""}, {41, 1, 1, "", ""}}},
	} {
		w := NewWatch(time.Minute)
		w.By = tc.by
		rep := w.Observe(now, conns)
		var got []row
		for _, p := range rep.Processes {
			r := row{int(p.PID), p.Count, p.Processes, p.Container.ID, p.Container.Pod.UID}
			if tc.by == ByPod && p.Container.Pod.UID != "" {
				r.id = "" // a pod's row: the pod, whichever container is named
			}
			got = append(got, r)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("by %d:\n got %+v\nwant %+v", tc.by, got, tc.want)
		}
	}
}
