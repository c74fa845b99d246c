package exporter

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/socklife/socklife/internal/backlog"
	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/topview"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
	"golang.org/x/sys/unix"
)

// Ten scrapes at once cost one collection; a scrape after the interval
// costs a second.
func TestConcurrentScrapesShareACollection(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	release := make(chan struct{})
	c := NewCollector(func(context.Context) (Model, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		<-release // every scrape arrives while the first collection runs
		return Model{}, nil
	}, 50*time.Millisecond)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
			}
		})
	}
	time.AfterFunc(20*time.Millisecond, func() { close(release) })
	wg.Wait()
	if n := c.Collections(); n != 1 || calls != 1 {
		t.Fatalf("10 concurrent scrapes made %d collections, want 1", n)
	}
	time.Sleep(60 * time.Millisecond) // past the interval: the cache is stale by construction
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if n := c.Collections(); n != 2 {
		t.Fatalf("a scrape after the interval made %d collections in all, want 2", n)
	}
}

func frameWith(procs ...closewait.Process) *topview.Frame {
	return &topview.Frame{CloseWait: closewait.Report{Processes: procs}}
}

// The cap keeps the processes with the most CLOSE_WAIT sockets and sums
// the rest into pid="other".
func TestProcessCap(t *testing.T) {
	f := frameWith(
		closewait.Process{PID: 30, Comm: "c", Count: 1, Oldest: 3 * time.Second},
		closewait.Process{PID: 10, Comm: "a", Count: 9, Oldest: time.Second},
		closewait.Process{PID: 20, Comm: "b", Count: 2, Oldest: 7 * time.Second},
	)
	fds := func(pid uint32) (uint64, uint64, bool) { return uint64(pid), 1024, true }
	for _, tc := range []struct {
		limit int
		want  []Process
	}{
		{0, []Process{
			{PID: "10", Comm: "a", CloseWait: 9, OldestSeconds: 1, OpenFDs: 10, MaxFDs: 1024, FDsKnown: true},
			{PID: "20", Comm: "b", CloseWait: 2, OldestSeconds: 7, OpenFDs: 20, MaxFDs: 1024, FDsKnown: true},
			{PID: "30", Comm: "c", CloseWait: 1, OldestSeconds: 3, OpenFDs: 30, MaxFDs: 1024, FDsKnown: true},
		}},
		{1, []Process{
			{PID: "10", Comm: "a", CloseWait: 9, OldestSeconds: 1, OpenFDs: 10, MaxFDs: 1024, FDsKnown: true},
			{PID: OtherPID, CloseWait: 3, OldestSeconds: 7, OpenFDs: 50, MaxFDs: 2048, FDsKnown: true},
		}},
		{3, nil}, // nil: as with no cap
	} {
		want := tc.want
		if want == nil {
			want = processes(f, fds, 0)
		}
		got := Build(Inputs{Frame: f, FDs: fds, MaxProcesses: tc.limit}).Processes
		if len(got) != len(want) {
			t.Fatalf("cap %d: %+v, want %+v", tc.limit, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("cap %d: process %d is %+v, want %+v", tc.limit, i, got[i], want[i])
			}
		}
	}
}

// A listener's holders get process series (with no CLOSE_WAIT sockets), and
// a container's short id stands for its name until the runtime answers.
func TestListenerHoldersAndContainers(t *testing.T) {
	c := container.Container{ID: "0123456789abcdef0123", Pod: container.Pod{UID: "uid-1", Namespace: "shop"}}
	f := &topview.Frame{Listeners: []topview.Listener{{Holders: []tracer.Holder{{PID: 7, Comm: "nginx"}, {PID: 8, Comm: "nginx"}}, Container: c, InContainer: true}}}
	got := Build(Inputs{Frame: f}).Processes
	want := Owner{Container: "0123456789ab", Pod: "uid-1", PodNamespace: "shop"}
	if len(got) != 2 || got[0].PID != "7" || got[1].PID != "8" || got[0].Owner != want || got[0].FDsKnown {
		t.Fatalf("processes %+v, want pids 7 and 8 of %+v with fds unknown", got, want)
	}
}

// The exposition: every family with its type, the histogram cumulative,
// fds only where known, and the whole of it lint-clean.
func TestExposition(t *testing.T) {
	var h backlog.WaitHistogram
	for _, d := range []time.Duration{50 * time.Microsecond, 3 * time.Millisecond, 20 * time.Second} {
		h.Add(d)
	}
	var states [tcpstate.Max]int
	states[tcpstate.CloseWait] = 12
	rep := &backlog.Report{
		Listeners: []backlog.ListenerReport{{Key: backlog.Key{Netns: 4026531833}, Local: netip.MustParseAddrPort("127.0.0.1:8080"), Comm: "srv",
			Backlog: 4, Queue: 5, SkDrops: 3, SynackRetransTotal: 2, AcceptsTotal: 3, WaitHistogram: h, Stalled: true, StalledTotal: 1500 * time.Millisecond}},
		Netns: []backlog.NetnsCounters{{Netns: 4026531833, Total: backlog.Netstat{ListenOverflows: 3, ListenDrops: 3}}},
	}
	m := Build(Inputs{
		Frame:   frameWith(closewait.Process{PID: 42, Comm: "leaky", Count: 12, Oldest: 90 * time.Second}),
		Backlog: rep, States: map[uint32][tcpstate.Max]int{4026531833: states},
		Totals:    map[uint32]tracer.ConnTotals{4026531833: {OpenedClient: 5, ClosedRemote: 12, ConnectFailures: 1}},
		NetnsName: func(uint32) string { return "host" },
		FDs:       func(uint32) (uint64, uint64, bool) { return 17, 1024, true },
		Tool: Tool{Version: "v1", GoVersion: "go1.26", Kernel: "6.18.0", Hooks: []Hook{{"accept", "tp_btf"}},
			AcceptsMeasured: true, Loss: tracer.Loss{RingFull: 4}},
	})
	c := NewCollector(func(context.Context) (Model, error) { return m, nil }, time.Minute)
	lv := `{comm="srv",container="",listener="127.0.0.1:8080",netns="4026531833",pod="",pod_namespace=""}`
	pv := `{comm="leaky",container="",pid="42",pod="",pod_namespace=""}`
	nv := `{netns="4026531833",netns_name="host"`
	body := scrape(t, c)
	for _, want := range []string{
		"# TYPE socklife_listener_accept_queue_length gauge", "socklife_listener_accept_queue_length" + lv + " 5",
		"socklife_listener_accept_queue_limit" + lv + " 4",
		"# TYPE socklife_listener_drops_total counter", "socklife_listener_drops_total" + lv + " 3",
		"socklife_listener_synack_retransmits_total" + lv + " 2", "socklife_listener_accepts_total" + lv + " 3",
		"# TYPE socklife_listener_accept_wait_seconds histogram",
		`socklife_listener_accept_wait_seconds_bucket{comm="srv",container="",listener="127.0.0.1:8080",netns="4026531833",pod="",pod_namespace="",le="0.0001"} 1`,
		`socklife_listener_accept_wait_seconds_bucket{comm="srv",container="",listener="127.0.0.1:8080",netns="4026531833",pod="",pod_namespace="",le="0.005"} 2`,
		`socklife_listener_accept_wait_seconds_bucket{comm="srv",container="",listener="127.0.0.1:8080",netns="4026531833",pod="",pod_namespace="",le="10"} 2`,
		`socklife_listener_accept_wait_seconds_bucket{comm="srv",container="",listener="127.0.0.1:8080",netns="4026531833",pod="",pod_namespace="",le="+Inf"} 3`,
		"socklife_listener_accept_wait_seconds_count" + lv + " 3",
		"socklife_listener_stalled" + lv + " 1", "socklife_listener_stall_seconds_total" + lv + " 1.5",
		"socklife_process_close_wait_sockets" + pv + " 12", "socklife_process_close_wait_oldest_seconds" + pv + " 90",
		"socklife_process_open_fds" + pv + " 17", "socklife_process_max_fds" + pv + " 1024",
		"socklife_tcp_sockets" + nv + `,state="CLOSE_WAIT"} 12`, "socklife_tcp_sockets" + nv + `,state="ESTABLISHED"} 0`,
		"socklife_tcp_connections_opened_total" + nv + `,role="client"} 5`,
		`socklife_tcp_connections_closed_total{closed_by="remote",netns="4026531833",netns_name="host"} 12`,
		"socklife_tcp_connect_failures_total" + nv + "} 1",
		"socklife_tcpext_listen_overflows_total" + nv + "} 3", "socklife_tcpext_reqq_full_drop_total" + nv + "} 0",
		`socklife_build_info{goversion="go1.26",kernel="6.18.0",version="v1"} 1`,
		`socklife_hook_info{feature="accept",hook="tp_btf"} 1`,
		`socklife_events_lost_total{cause="ring_full"} 4`,
		"# TYPE socklife_scrape_collection_seconds gauge",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(body, "NEW_SYN_RECV") {
		t.Error("a request is no socket state: NEW_SYN_RECV exported")
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// Without an accept hook (--accept-wait off, or auto where only the
// syscall tracepoint would do) nothing is known of accepts: their series
// are absent, not zeros that read as "never accepted" or "never stalled";
// the queue, the drops and the SYN-ACKs are still there.
func TestAcceptSeriesAbsentWithoutAcceptHook(t *testing.T) {
	rep := &backlog.Report{Listeners: []backlog.ListenerReport{{Key: backlog.Key{Netns: 1}, Local: netip.MustParseAddrPort("127.0.0.1:8080"),
		Backlog: 4, Queue: 5, SkDrops: 3, Stalled: true}}}
	m := Build(Inputs{Backlog: rep, Tool: Tool{Hooks: []Hook{{"accept", "off"}}}})
	body := scrape(t, NewCollector(func(context.Context) (Model, error) { return m, nil }, time.Minute))
	for _, absent := range []string{"socklife_listener_accepts_total", "socklife_listener_accept_wait_seconds", "socklife_listener_stalled", "socklife_listener_stall_seconds_total"} {
		if strings.Contains(body, absent) {
			t.Errorf("scrape has %s without an accept hook", absent)
		}
	}
	for _, present := range []string{"socklife_listener_accept_queue_length{", "socklife_listener_drops_total{", "socklife_listener_synack_retransmits_total{",
		`socklife_hook_info{feature="accept",hook="off"} 1`} {
		if !strings.Contains(body, present) {
			t.Errorf("scrape lacks %s", present)
		}
	}
}

func scrape(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// The sockets of a SO_REUSEPORT group listen on one address: one series,
// summed (two series with the same labels would fail the scrape).
func TestReuseportListenersSummed(t *testing.T) {
	var h1, h2 backlog.WaitHistogram
	h1.Add(time.Millisecond)
	h2.Add(time.Second)
	at := netip.MustParseAddrPort("0.0.0.0:80")
	rep := &backlog.Report{Listeners: []backlog.ListenerReport{
		{Key: backlog.Key{Netns: 1, Inode: 10}, Local: at, Comm: "w1", Backlog: 511, Queue: 2, SkDrops: 1, AcceptsTotal: 1, WaitHistogram: h1},
		{Key: backlog.Key{Netns: 1, Inode: 11}, Local: at, Comm: "w2", Backlog: 511, Queue: 3, SkDrops: 4, AcceptsTotal: 1, WaitHistogram: h2, Stalled: true},
		{Key: backlog.Key{Netns: 2, Inode: 12}, Local: at, Comm: "other", Backlog: 4},
	}}
	ls := Build(Inputs{Backlog: rep}).Listeners
	if len(ls) != 2 {
		t.Fatalf("%d series, want 2 (one a namespace): %+v", len(ls), ls)
	}
	l := ls[0]
	if l.Comm != "w1" || l.Queue != 5 || l.Limit != 1022 || l.Drops != 5 || l.Accepts != 2 || l.Waits.Count != 2 || !l.Stalled {
		t.Errorf("merged %+v", l)
	}
	scrape(t, NewCollector(func(context.Context) (Model, error) { return Build(Inputs{Backlog: rep}), nil }, time.Minute))
}

// States per namespace, as the dump sees the sockets.
func TestCountStates(t *testing.T) {
	sk := func(ns uint32, s tcpstate.State, local, remote string) snapshot.Socket {
		return snapshot.Socket{Protocol: snapshot.TCP, Family: unix.AF_INET, State: s, Netns: ns,
			Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote)}
	}
	dumped := []snapshot.Socket{
		sk(1, tcpstate.CloseWait, "127.0.0.1:80", "127.0.0.1:5001"),
		sk(1, tcpstate.CloseWait, "127.0.0.1:80", "127.0.0.1:5002"),
		sk(1, tcpstate.TimeWait, "127.0.0.1:80", "127.0.0.1:5004"),
		sk(1, tcpstate.Listen, "127.0.0.1:81", "0.0.0.0:0"),
		sk(2, tcpstate.Established, "10.0.0.1:80", "10.0.0.2:5003"),
		sk(2, tcpstate.Established, "10.0.0.1:22", "10.0.0.2:5005"),
	}
	dumped = append(dumped, snapshot.Socket{State: tcpstate.Max, Netns: 1}) // none the kernel has
	got := map[uint32][tcpstate.Max]int{}
	for i := range dumped {
		CountState(got, &dumped[i])
	}
	if len(got) != 2 || got[1][tcpstate.CloseWait] != 2 || got[1][tcpstate.TimeWait] != 1 || got[1][tcpstate.Listen] != 1 || got[2][tcpstate.Established] != 2 {
		t.Errorf("states %v", got)
	}
}
