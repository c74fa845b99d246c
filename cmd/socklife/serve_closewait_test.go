package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/tracer"
)

// Which sockets serve counts in CLOSE_WAIT, and what it says of each: the
// census says which are there and, for those the programs saw enter it,
// since when and whose; an older one (from the start-up snapshot, or
// found without a since) keeps what serve knew when it first found it.
func TestJoinCloseWaits(t *testing.T) {
	ap := netip.MustParseAddrPort
	since := time.Unix(1700000000, 0)
	start := since.Add(-time.Hour)
	older := map[closeWaitKey]socketCloseWait{}
	for _, o := range []socketCloseWait{
		{Conn: closewait.Conn{PID: 7, Comm: "old", Local: ap("127.0.0.1:81"), Remote: ap("127.0.0.1:6001"), AtLeast: start}, netns: 1, sockCgroup: 5},
		// gone since the snapshot
		{Conn: closewait.Conn{PID: 7, Comm: "old", Local: ap("127.0.0.1:81"), Remote: ap("127.0.0.1:6002"), AtLeast: start}, netns: 1},
		// the snapshot's socket talking IPv4 over IPv6: v4-mapped in a dump
		{Conn: closewait.Conn{PID: 8, Comm: "v6", Local: ap("[::ffff:10.0.0.1]:443"), Remote: ap("[::ffff:10.0.0.2]:5002"), AtLeast: start}, netns: 1},
	} {
		older[cwKey(o.netns, o.Local, o.Remote)] = o
	}
	found := []tracer.CloseWait{
		{Netns: 1, Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:5001"), Since: since, OwnerSource: tracer.OwnerTask,
			Owner: tracer.Task{PID: 42, Comm: "srv", CgroupID: 9}, SockCgroupID: 8},
		// the same addresses in another namespace, no owner known
		{Netns: 2, Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:5001"), Since: since},
		// older ones still there, as the census gives them
		{Netns: 1, Local: ap("127.0.0.1:81"), Remote: ap("127.0.0.1:6001"), SockCgroupID: 5},
		{Netns: 1, Local: ap("10.0.0.1:443"), Remote: ap("10.0.0.2:5002")},
		// no since: a run the kernel skipped; its owner is the kernel's
		{Netns: 1, Local: ap("127.0.0.1:82"), Remote: ap("127.0.0.1:7001"), OwnerSource: tracer.OwnerListener,
			Owner: tracer.Task{PID: 43, Comm: "lst", CgroupID: 10}, SockCgroupID: 11},
	}
	now := since.Add(time.Minute)
	joined, still := joinCloseWaits(now, found, older)
	if len(joined) != len(found) {
		t.Fatalf("joined %d sockets, want %d: %+v", len(joined), len(found), joined)
	}
	want := []socketCloseWait{
		{Conn: closewait.Conn{PID: 42, Comm: "srv", Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:5001"), Since: since}, netns: 1, sockCgroup: 8, ownerCgroup: 9},
		{Conn: closewait.Conn{Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:5001"), Since: since}, netns: 2},
		older[cwKey(1, ap("127.0.0.1:81"), ap("127.0.0.1:6001"))],
		older[cwKey(1, ap("10.0.0.1:443"), ap("10.0.0.2:5002"))],
		{Conn: closewait.Conn{PID: 43, Comm: "lst", Local: ap("127.0.0.1:82"), Remote: ap("127.0.0.1:7001"), AtLeast: now}, netns: 1, sockCgroup: 11, ownerCgroup: 10},
	}
	for i := range want {
		if joined[i] != want[i] {
			t.Errorf("socket %d: %+v, want %+v", i, joined[i], want[i])
		}
	}
	// the older ones still there, and the one found without a since
	// from now on, with the age it got now
	if len(still) != 3 {
		t.Errorf("older sockets kept %+v, want 3", still)
	}
	for _, i := range []int{2, 3, 4} {
		if got, ok := still[cwKey(want[i].netns, want[i].Local, want[i].Remote)]; !ok || got != want[i] {
			t.Errorf("older socket %v kept as %+v (%v)", want[i].Remote, got, ok)
		}
	}
	again, _ := joinCloseWaits(now.Add(time.Minute), found[4:], still)
	if len(again) != 1 || !again[0].AtLeast.Equal(now) {
		t.Errorf("found again: %+v, want its first finding kept (%v)", again, now)
	}
}
