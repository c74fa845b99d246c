package main

import (
	"net/netip"
	"testing"

	"github.com/socklife/socklife/internal/live"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "4096": 4096, "64K": 64 << 10, "64k": 64 << 10, "100M": 100 << 20, "1G": 1 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "-1", "K", "1.5M", "1T", "99999999999G"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}

// The snapshot's sockets are filtered as the kernel filters events.
func TestKeepSocket(t *testing.T) {
	s := snapshot.Socket{
		Netns: 7, Local: netip.MustParseAddrPort("[::ffff:10.0.0.1]:80"), Remote: netip.MustParseAddrPort("[::ffff:10.0.0.2]:5000"),
		Processes: []snapshot.Process{{PID: 42, Comm: "nginx"}},
	}
	for _, tc := range []struct {
		name string
		o    tracer.Options
		want bool
	}{
		{"no filter", tracer.Options{}, true},
		{"port, local side", tracer.Options{Ports: []uint16{80}}, true},
		{"port, remote side", tracer.Options{Ports: []uint16{5000}}, true},
		{"port, neither", tracer.Options{Ports: []uint16{443}}, false},
		{"ports, one matches", tracer.Options{Ports: []uint16{443, 80}}, true},
		{"sport", tracer.Options{SPorts: []uint16{80}}, true},
		{"sport is not dport", tracer.Options{SPorts: []uint16{5000}}, false},
		{"dport", tracer.Options{DPorts: []uint16{5000}}, true},
		{"dports, none matches", tracer.Options{DPorts: []uint16{80, 443}}, false},
		{"netns", tracer.Options{Netns: 7}, true},
		{"other netns", tracer.Options{Netns: 8}, false},
		{"v4-mapped is IPv4", tracer.Options{IPv4Only: true}, true},
		{"v4-mapped is not IPv6", tracer.Options{IPv6Only: true}, false},
		{"pid", tracer.Options{PID: 42}, true},
		{"other pid", tracer.Options{PID: 43}, false},
	} {
		if got := keepSocket(tc.o)(&s); got != tc.want {
			t.Errorf("%s: keep = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// --comm and --state apply to whole connections; listeners are never records.
func TestRecordWants(t *testing.T) {
	c := live.Conn{
		Role: live.RoleServer, State: tcpstate.LastAck, OwnerKnown: true, Comm: "nginx",
		History: []live.Step{{State: tcpstate.Established}, {State: tcpstate.CloseWait}, {State: tcpstate.LastAck}},
	}
	listener := live.Conn{Role: live.RoleListener, State: tcpstate.Listen}
	for _, tc := range []struct {
		name   string
		c      live.Conn
		comm   string
		states tcpstate.Mask
		want   bool
	}{
		{"everything", c, "", 0, true},
		{"its comm", c, "nginx", 0, true},
		{"other comm", c, "curl", 0, false},
		{"a state it went through", c, "", tcpstate.Of(tcpstate.CloseWait), true},
		{"a state it never had", c, "", tcpstate.Of(tcpstate.FinWait1), false},
		{"listener", listener, "", 0, false},
	} {
		f := recordFlags{filterFlags: filterFlags{comm: tc.comm}}
		if got := f.wants(&tc.c, tc.states); got != tc.want {
			t.Errorf("%s: wants = %v, want %v", tc.name, got, tc.want)
		}
	}
}
