package testutil

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/socklife/socklife/internal/tcpstate"
)

func TestParseSSHost(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:80":             "127.0.0.1:80",
		"[::1]:22":                 "[::1]:22",
		"[::ffff:127.0.0.1]:10000": "[::ffff:127.0.0.1]:10000",
		"*:22":                     "[::]:22",
		"0.0.0.0:*":                "0.0.0.0:0",
		"127.0.0.1%lo:53":          "127.0.0.1:53",
		"[fe80::1]%eth0:22":        "[fe80::1]:22",
	} {
		got, err := ParseSSHost(in)
		if err != nil || got != netip.MustParseAddrPort(want) {
			t.Errorf("ParseSSHost(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"127.0.0.1", "host:80", "127.0.0.1:http", "127.0.0.1:65536"} {
		if got, err := ParseSSHost(in); err == nil {
			t.Errorf("ParseSSHost(%q) = %v, want an error", in, got)
		}
	}
}

// TestSSZoo builds a zoo and checks that ss lists every socket of it, with
// the states NewSSZoo documents, and that a refused filter reads as refused.
func TestSSZoo(t *testing.T) {
	RequireSS(t)
	z := NewSSZoo(t, 6000, 8000) // below ssfilter's and cmd's zoos
	keys, ok, serr := z.SS(t, "-tan", nil, 0)
	if !ok {
		t.Fatalf("ss -tan: %s", serr)
	}
	count := map[tcpstate.State]int{}
	for _, k := range keys {
		var l, r string
		var st tcpstate.State
		if _, err := fmt.Sscan(k, &l, &r, &st); err != nil {
			t.Fatalf("key %q: %v", k, err)
		}
		count[st]++
	}
	want := map[tcpstate.State]int{
		tcpstate.Listen: 6, tcpstate.Established: 14,
		tcpstate.FinWait2: 1, tcpstate.CloseWait: 1, tcpstate.TimeWait: 1,
	}
	for st, n := range want {
		if count[st] != n {
			t.Errorf("%d %v sockets, want %d (all: %q)", count[st], st, n, keys)
		}
	}
	if len(keys) != SSZooSockets {
		t.Errorf("%d zoo sockets, want %d", len(keys), SSZooSockets)
	}
	one, ok, _ := z.SS(t, "-tn", []string{"state", "time-wait"}, tcpstate.TimeWait)
	if !ok || len(one) != 1 {
		t.Errorf("ss -tn state time-wait: ok %v, %q", ok, one)
	}
	if _, ok, _ := z.SS(t, "-tan", []string{"sport", "=", ":nosuchport"}, 0); ok {
		t.Errorf("ss accepted sport = :nosuchport")
	}
	g := NewSSGen(z.SSAtoms(), 1, 2)
	cs := g.Cases(10, [][]string{nil}, 5)
	if len(cs) != 10 || cs[4].Valid || !cs[0].Valid {
		t.Errorf("Cases: %+v", cs)
	}
}
