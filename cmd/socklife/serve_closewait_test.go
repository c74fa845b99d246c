package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/tracer"
)

// Which sockets serve counts in CLOSE_WAIT: the dump says which are there,
// the kernel's map when and whose, the start-up snapshot the older ones.
func TestJoinCloseWaits(t *testing.T) {
	ap := netip.MustParseAddrPort
	since := time.Unix(1700000000, 0)
	entered := []tracer.CloseWait{
		{Netns: 1, Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:5001"), Since: since, OwnerSource: tracer.OwnerTask,
			Owner: tracer.Task{PID: 42, Comm: "srv", CgroupID: 9}, SockCgroupID: 8},
		// an IPv6 socket talking IPv4: unmapped in the map, v4-mapped in the dump
		{Netns: 1, Local: ap("10.0.0.1:443"), Remote: ap("10.0.0.2:5002"), Since: since},
		// left CLOSE_WAIT, its exit never reached the map
		{Netns: 1, Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:5003"), Since: since, OwnerSource: tracer.OwnerTask, Owner: tracer.Task{PID: 42}},
		// the same addresses in another namespace: not the dump's socket
		{Netns: 2, Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:5001"), Since: since},
	}
	older := []socketCloseWait{
		{Conn: closewait.Conn{PID: 7, Comm: "old", Local: ap("127.0.0.1:81"), Remote: ap("127.0.0.1:6001")}, netns: 1, sockCgroup: 5},
		{Conn: closewait.Conn{PID: 7, Comm: "old", Local: ap("127.0.0.1:81"), Remote: ap("127.0.0.1:6002")}, netns: 1},
	}
	now := map[closeWaitKey]bool{}
	for _, k := range []struct {
		netns         uint32
		local, remote string
	}{
		{1, "127.0.0.1:80", "127.0.0.1:5001"},
		{1, "[::ffff:10.0.0.1]:443", "[::ffff:10.0.0.2]:5002"},
		{1, "127.0.0.1:81", "127.0.0.1:6001"},
	} {
		now[cwKey(k.netns, ap(k.local), ap(k.remote))] = true
	}
	joined, still := joinCloseWaits(entered, older, now)
	got := map[string]socketCloseWait{}
	for _, j := range joined {
		got[j.Remote.String()] = j
	}
	if len(joined) != 3 {
		t.Errorf("joined %d sockets, want 3: %+v", len(joined), joined)
	}
	if j := got["127.0.0.1:5001"]; j.PID != 42 || j.Comm != "srv" || j.ownerCgroup != 9 || j.sockCgroup != 8 || !j.Since.Equal(since) || j.netns != 1 {
		t.Errorf("the kernel's entry lost its owner or since: %+v", j)
	}
	if _, ok := got["10.0.0.2:5002"]; !ok {
		t.Error("the v4-mapped socket is not matched")
	}
	if j, ok := got["127.0.0.1:6001"]; !ok || j.PID != 7 || j.sockCgroup != 5 || !j.Since.IsZero() {
		t.Errorf("the older socket still there: %+v (found %v)", j, ok)
	}
	if len(still) != 1 || still[0].Remote != ap("127.0.0.1:6001") {
		t.Errorf("older sockets kept %+v, want the one still in CLOSE_WAIT", still)
	}
}
