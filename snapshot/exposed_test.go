package snapshot

import (
	"net/netip"
	"testing"

	"github.com/socklife/socklife/internal/tcpstate"
)

func TestExposed(t *testing.T) {
	sock := func(p Protocol, st tcpstate.State, local string) Socket {
		return Socket{Protocol: p, State: st, Local: netip.MustParseAddrPort(local)}
	}
	socks := []Socket{
		sock(TCP, tcpstate.Listen, "127.0.0.1:5432"),          // loopback: not exposed
		sock(TCP, tcpstate.Listen, "[::1]:5432"),              // loopback v6
		sock(TCP, tcpstate.Listen, "[::ffff:127.0.0.1]:8080"), // mapped loopback
		sock(TCP, tcpstate.Listen, "0.0.0.0:22"),
		sock(TCP, tcpstate.Listen, "[::]:22"),
		sock(TCP, tcpstate.Listen, "10.0.0.5:443"),
		sock(TCP, tcpstate.Listen, "[fe80::1]:9000"),
		sock(TCP, tcpstate.Established, "10.0.0.5:443"), // accepted connection, not a listener
		sock(UDP, tcpstate.Close, "0.0.0.0:53"),
		sock(UDP, tcpstate.Close, "0.0.0.0:0"),           // unbound
		sock(UDP, tcpstate.Established, "10.0.0.5:5000"), // connected: hears only its peer
		{Protocol: Unix, State: tcpstate.Listen, Path: "/run/x.sock"},
		{Protocol: TCP, State: tcpstate.Listen, Local: netip.MustParseAddrPort("0.0.0.0:9204"), Interface: 1}, // SO_BINDTODEVICE lo
	}
	ifaceOf := func(_ uint32, a netip.Addr) string {
		if a == netip.MustParseAddr("10.0.0.5") {
			return "eth0"
		}
		return ""
	}
	got := Exposed(socks, ifaceOf)
	want := []struct {
		proto Protocol
		local string
		scope Scope
		iface string
	}{
		{TCP, "0.0.0.0:22", Wildcard, ""},
		{TCP, "[::]:22", Wildcard, ""},
		{TCP, "10.0.0.5:443", Address, "eth0"},
		{TCP, "[fe80::1]:9000", LinkLocal, ""},
		{UDP, "0.0.0.0:53", Wildcard, ""},
	}
	if len(got) != len(want) {
		for _, e := range got {
			t.Logf("got %v %v %v", e.Socket.Protocol, e.Socket.Local, e.Scope)
		}
		t.Fatalf("got %d exposures, want %d", len(got), len(want))
	}
	for i, w := range want {
		e := got[i]
		if e.Socket.Protocol != w.proto || e.Socket.Local.String() != w.local || e.Scope != w.scope || e.Interface != w.iface {
			t.Errorf("exposure %d = %v %v %v %q, want %v %v %v %q", i,
				e.Socket.Protocol, e.Socket.Local, e.Scope, e.Interface, w.proto, w.local, w.scope, w.iface)
		}
	}
}

func TestSummarize(t *testing.T) {
	nginx := []Process{{PID: 10, Comm: "nginx", FD: 3}}
	java := []Process{{PID: 20, Comm: "java", FD: 9}}
	forked := []Process{{PID: 20, Comm: "java", FD: 9}, {PID: 20, Comm: "java", FD: 12}, {PID: 21, Comm: "java", FD: 9}}
	socks := []Socket{
		{Protocol: TCP, State: tcpstate.CloseWait, Processes: nginx},
		{Protocol: TCP, State: tcpstate.CloseWait, Processes: java},
		{Protocol: TCP, State: tcpstate.CloseWait, Processes: java},
		{Protocol: TCP, State: tcpstate.CloseWait, Processes: forked}, // pid 20 twice: counts once
		{Protocol: TCP, State: tcpstate.CloseWait},                    // owner unknown
		{Protocol: TCP, State: tcpstate.TimeWait},
		{Protocol: TCP, State: tcpstate.Established, Processes: nginx},
		{Protocol: UDP, State: tcpstate.Close},
		{Protocol: Unix, State: tcpstate.Established},
	}
	sum := Summarize(socks, 2)
	if sum.Total != len(socks) {
		t.Errorf("Total = %d, want %d", sum.Total, len(socks))
	}
	if len(sum.Protocols) != 3 || sum.Protocols[0].Protocol != TCP || sum.Protocols[0].Total != 7 ||
		sum.Protocols[0].States[tcpstate.CloseWait] != 5 || sum.Protocols[0].States[tcpstate.TimeWait] != 1 {
		t.Errorf("Protocols = %+v", sum.Protocols)
	}
	want := []ProcessCount{{20, "java", 3}, {0, "", 1}}
	if len(sum.CloseWait) != 2 || sum.CloseWait[0] != want[0] {
		t.Fatalf("CloseWait = %+v, want top 2 starting %+v", sum.CloseWait, want[0])
	}
	// Three processes tie at one socket; the lowest pid (unknown, 0) wins.
	if sum.CloseWait[1] != want[1] {
		t.Errorf("CloseWait[1] = %+v, want %+v", sum.CloseWait[1], want[1])
	}
}
