package render

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/topview"

	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/internal/live"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
)

var topT0 = time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)

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
	table.Load(socks, topT0)
	listening := []snapshot.Socket{socks[0]}
	listening[0].RecvQ = 129 // full: the queue holds backlog+1

	s := topview.NewSampler(time.Minute, closewait.ByProcess)
	f := s.Sample(topview.Input{At: topT0.Add(time.Second), Table: table, Listening: listening, Stats: live.Stats{Events: 100}})
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

	f = s.Sample(topview.Input{At: topT0.Add(3 * time.Second), Table: table, Listening: listening, Stats: live.Stats{Events: 300, Lost: 2}})
	if f.Interval != 2*time.Second || f.EventsPerSec != 100 || f.Lost != 2 || f.Delta[tcpstate.CloseWait] != 0 {
		t.Errorf("second frame: interval %v, events/s %v, lost %d, delta %v", f.Interval, f.EventsPerSec, f.Lost, f.Delta)
	}

	var out bytes.Buffer
	if err := WriteTop(&out, &f, View{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CLOSE-WAIT 2", "TIME-WAIT 1", "TIME-WAIT is normal", "leaky", ">=3s", "0.0.0.0:8080", "129/128 FULL"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := WriteTop(&out, &f, View{Filter: ":9999"}); err != nil {
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

// An 80x24 terminal (22 lines for the frame under top's footer) with 20
// listeners and 6 leaking processes: the header and the CLOSE_WAIT section
// stay on screen, the listeners get what is left and say what they left
// out, and no line wraps.
func TestWriteTopFitsTerminal(t *testing.T) {
	f := topview.Frame{At: topT0, Hooks: []string{"state=tp_btf", "accept=tracepoint"}}
	f.States[tcpstate.CloseWait] = 60
	for i := range 6 {
		f.CloseWait.Processes = append(f.CloseWait.Processes, closewait.Process{PID: uint32(100 + i), Comm: "leaky", Count: 10 - i,
			Ports: []closewait.PortCount{{Port: 8080, Count: 10 - i}}, Peers: []closewait.PeerCount{{Peer: netip.MustParseAddr("2001:db8::1234:5678:9abc"), Count: 10 - i}}})
	}
	f.CloseWait.Total = 45
	for i := range 20 {
		f.Listeners = append(f.Listeners, topview.Listener{Netns: 1, Local: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(8000+i)), PID: 7, Comm: "srv", Backlog: 128})
	}
	for _, tc := range []struct {
		height, width int
		paused        bool
	}{{22, 80, false}, {22, 80, true}, {12, 60, false}, {60, 200, false}} {
		var out bytes.Buffer
		if err := WriteTop(&out, &f, View{Height: tc.height, Width: tc.width, Paused: tc.paused}); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) > tc.height {
			t.Errorf("%dx%d: %d lines:\n%s", tc.width, tc.height, len(lines), out.String())
		}
		for _, l := range lines {
			if len(l) > tc.width {
				t.Errorf("%dx%d: a line of %d columns wraps: %q", tc.width, tc.height, len(l), l)
			}
		}
		text := out.String()
		wants := []string{"CLOSE-WAIT 60", "CLOSE-WAIT by process", "100  leaky"}
		if tc.height >= 22 {
			wants = append(wants, "105  leaky") // every one of them
		}
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Errorf("%dx%d: %q not on screen:\n%s", tc.width, tc.height, want, text)
			}
		}
		if strings.Contains(text, "PAUSED") != tc.paused {
			t.Errorf("%dx%d paused %v:\n%s", tc.width, tc.height, tc.paused, text)
		}
		if all := tc.height >= 40; all != !strings.Contains(text, "more (f filters") {
			t.Errorf("%dx%d: rows left out said %v, want %v:\n%s", tc.width, tc.height, !all, !all, text)
		}
	}
}

// The layout itself: CLOSE_WAIT keeps at least half the free rows, more
// when the listeners need fewer; a cut section gives a row to "... more".
func TestFit(t *testing.T) {
	for _, tc := range []struct {
		height, procs, listeners int
		want                     layout
	}{
		{0, 50, 50, layout{50, 50, true}},
		{40, 6, 20, layout{6, 20, true}},
		{35, 6, 20, layout{6, 20, false}},
		{22, 6, 20, layout{6, 6, false}},  // 13 free: 6 + 6 listeners + "more"
		{22, 30, 20, layout{6, 5, false}}, // 13 free: 6 + "more" + 5 + "more"
		{22, 30, 1, layout{11, 1, false}}, // 13 free: the listener takes one
		{9, 3, 3, layout{0, 0, false}},    // nothing free: the "more" lines only
	} {
		if got := fit(tc.height, tc.procs, tc.listeners); got != tc.want {
			t.Errorf("fit(%d, %d, %d) = %+v, want %+v", tc.height, tc.procs, tc.listeners, got, tc.want)
		}
	}
}
