package topview

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/tracer"
)

// What top's filter box keeps is what was typed: a pid, a :port or a
// command name, each row kept matching it, and no row made up.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{"", "4242", ":8080", "nginx", " nginx ", ":", ":99999", "0", ":0", "-1", "18446744073709551616"} {
		f.Add(s)
	}
	procs := []closewait.Process{
		{PID: 4242, Comm: "nginx", Ports: []closewait.PortCount{{Port: 8080, Count: 3}}},
		{PID: 7, Comm: "redis-server", Ports: []closewait.PortCount{{Port: 6379, Count: 1}}},
	}
	ls := []Listener{
		{Local: netip.MustParseAddrPort("0.0.0.0:8080"), PID: 4242, Comm: "nginx", Holders: []tracer.Holder{{PID: 4243, Comm: "nginx"}}},
		{Local: netip.MustParseAddrPort("[::]:6379"), PID: 7, Comm: "redis-server"},
	}
	f.Fuzz(func(t *testing.T, s string) {
		gotP, gotL := filterProcesses(procs, s), filterListeners(ls, s)
		if len(gotP) > len(procs) || len(gotL) > len(ls) {
			t.Fatalf("%q: more rows than there are", s)
		}
		m := parseFilter(s)
		if m.comm != "" && m.comm != strings.TrimSpace(s) {
			t.Errorf("%q read as the name %q", s, m.comm)
		}
		for _, p := range gotP {
			ports := slices.ContainsFunc(p.Ports, func(pc closewait.PortCount) bool { return uint64(pc.Port) == m.port })
			if m.pid != 0 && uint64(p.PID) != m.pid || m.comm != "" && p.Comm != m.comm || m.port != 0 && !ports {
				t.Errorf("%q kept process %d %s", s, p.PID, p.Comm)
			}
		}
		for _, l := range gotL {
			holder := slices.ContainsFunc(l.Holders, func(h tracer.Holder) bool { return uint64(h.PID) == m.pid })
			if m.pid != 0 && uint64(l.PID) != m.pid && !holder || m.comm != "" && l.Comm != m.comm || m.port != 0 && uint64(l.Local.Port()) != m.port {
				t.Errorf("%q kept listener %s", s, l.Local)
			}
		}
	})
}
