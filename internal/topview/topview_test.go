package topview

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/live"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
)

var t0 = time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)

func sock(state tcpstate.State, local, remote string, pid int32, comm string) snapshot.Socket {
	return snapshot.Socket{
		Protocol: snapshot.TCP, Family: 2, State: state, Netns: 1,
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote),
		Inode: uint64(pid)*1000 + uint64(netip.MustParseAddrPort(remote).Port()), SendQ: 128,
		Processes: []snapshot.Process{{PID: pid, Comm: comm, FD: 3}},
	}
}

func TestSampleFromTable(t *testing.T) {
	socks := []snapshot.Socket{
		sock(tcpstate.Listen, "0.0.0.0:8080", "0.0.0.0:0", 42, "leaky"),
		sock(tcpstate.CloseWait, "127.0.0.1:8080", "127.0.0.1:40001", 42, "leaky"),
		sock(tcpstate.CloseWait, "127.0.0.1:8080", "127.0.0.1:40002", 42, "leaky"),
		sock(tcpstate.Established, "127.0.0.1:40003", "127.0.0.1:5432", 7, "app"),
		{Protocol: snapshot.TCP, State: tcpstate.TimeWait, Netns: 1,
			Local: netip.MustParseAddrPort("127.0.0.1:40004"), Remote: netip.MustParseAddrPort("127.0.0.1:5432")},
	}
	table := live.NewTable(nil)
	table.Load(socks, t0)
	listening := []snapshot.Socket{socks[0]}
	listening[0].RecvQ = 129 // full: the queue holds backlog+1

	s := NewSampler(time.Minute)
	f := s.Sample(Input{At: t0.Add(time.Second), Table: table, Listening: listening, Stats: live.Stats{Events: 100}})
	if f.States[tcpstate.CloseWait] != 2 || f.States[tcpstate.Established] != 1 || f.States[tcpstate.TimeWait] != 1 {
		t.Errorf("states = %v", f.States)
	}
	if f.CloseWait.Total != 2 || len(f.CloseWait.Processes) != 1 || f.CloseWait.Processes[0].PID != 42 ||
		f.CloseWait.Processes[0].Oldest != time.Second || !f.CloseWait.Processes[0].OldestAtLeast {
		t.Errorf("close wait = %+v, want leaky with 2, oldest at least 1s", f.CloseWait)
	}
	if len(f.Listeners) != 1 || f.Listeners[0].PID != 42 || f.Listeners[0].QueueLen != 129 || f.Listeners[0].Backlog != 128 {
		t.Errorf("listeners = %+v", f.Listeners)
	}

	f = s.Sample(Input{At: t0.Add(3 * time.Second), Table: table, Listening: listening, Stats: live.Stats{Events: 300, Lost: 2}})
	if f.Interval != 2*time.Second || f.EventsPerSec != 100 || f.Lost != 2 || f.Delta[tcpstate.CloseWait] != 0 {
		t.Errorf("second frame: interval %v, events/s %v, lost %d, delta %v", f.Interval, f.EventsPerSec, f.Lost, f.Delta)
	}

	var out bytes.Buffer
	if err := WriteText(&out, &f, View{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CLOSE-WAIT 2", "TIME-WAIT 1", "TIME-WAIT is normal", "leaky", ">=3s", "0.0.0.0:8080", "129/128 FULL"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := WriteText(&out, &f, View{Filter: ":9999"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "leaky") {
		t.Errorf("filter :9999 still shows leaky:\n%s", out.String())
	}
}

func TestAppendAge(t *testing.T) {
	tests := []struct {
		d       time.Duration
		atLeast bool
		want    string
	}{
		{850 * time.Millisecond, false, "850ms"},
		{12 * time.Second, true, ">=12s"},
		{4*time.Minute + 10*time.Second, false, "4m10s"},
		{2*time.Hour + 5*time.Minute, false, "2h5m"},
	}
	for _, tt := range tests {
		if got := string(AppendAge(nil, tt.d, tt.atLeast)); got != tt.want {
			t.Errorf("AppendAge(%v, %v) = %q, want %q", tt.d, tt.atLeast, got, tt.want)
		}
	}
}

func TestParseFilter(t *testing.T) {
	tests := []struct {
		in   string
		want matcher
	}{
		{"4242", matcher{pid: 4242}},
		{":8080", matcher{port: 8080}},
		{"nginx", matcher{comm: "nginx"}},
		{"", matcher{}},
		{":http", matcher{comm: ":http"}},
	}
	for _, tt := range tests {
		if got := parseFilter(tt.in); got != tt.want {
			t.Errorf("parseFilter(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
