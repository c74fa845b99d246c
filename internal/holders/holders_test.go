package holders

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

var t0 = time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// listening is a LISTEN socket held by pids (each with fd 4, and pid 1 twice:
// a dup'd fd), comm "nginx".
func listening(inode uint64, local string, pids ...int32) snapshot.Socket {
	s := snapshot.Socket{Protocol: snapshot.TCP, State: tcpstate.Listen, Netns: 7, Inode: inode,
		Local: netip.MustParseAddrPort(local)}
	for _, pid := range pids {
		s.Processes = append(s.Processes, snapshot.Process{PID: pid, Comm: "nginx", FD: 4})
	}
	return s
}

// render writes a Set as "3121*,3122*,3120" (* : seen accepting), "-" for nil.
func render(s *Set) string {
	if s == nil {
		return "-"
	}
	var parts []string
	for _, h := range s.Holders {
		p := fmt.Sprint(h.PID)
		if h.Accepts {
			p += "*"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}

func TestRegistry(t *testing.T) {
	master := Key{Netns: 7, Inode: 100}
	for _, tc := range []struct {
		name string
		run  func(r *Registry)
		key  Key
		want string // Listener(key)
	}{
		{"holders by pid, one per process", func(r *Registry) {
			r.Load([]snapshot.Socket{listening(100, "127.0.0.1:80", 3122, 3120, 3121, 3120)}, at(0), false)
		}, master, "3120,3121,3122"},
		{"acceptors first", func(r *Registry) {
			r.Load([]snapshot.Socket{listening(100, "127.0.0.1:80", 3120, 3121, 3122)}, at(0), false)
			r.Accepted(master, 3122, "nginx", at(1))
		}, master, "3122*,3120,3121"},
		{"an acceptor no scan listed yet", func(r *Registry) {
			r.Accepted(master, 3122, "nginx", at(1))
		}, master, "3122*"},
		{"a worker gone at reload drops out, a newer acceptor stays", func(r *Registry) {
			r.Load([]snapshot.Socket{listening(100, "127.0.0.1:80", 3120, 3121)}, at(0), false)
			r.Accepted(master, 3121, "nginx", at(1))
			r.Accepted(master, 4000, "nginx", at(3)) // forked after the scan below began
			r.Load([]snapshot.Socket{listening(100, "127.0.0.1:80", 3120, 3999)}, at(2), false)
		}, master, "4000*,3120,3999"},
		{"a full load forgets a closed listener", func(r *Registry) {
			r.Load([]snapshot.Socket{listening(100, "127.0.0.1:80", 3120)}, at(0), false)
			r.Load([]snapshot.Socket{listening(101, "127.0.0.1:81", 3120)}, at(1), false)
		}, master, "-"},
		{"a partial load keeps it", func(r *Registry) {
			r.Load([]snapshot.Socket{listening(100, "127.0.0.1:80", 3120)}, at(0), false)
			r.Load([]snapshot.Socket{listening(101, "127.0.0.1:81", 3120)}, at(1), true)
		}, master, "3120"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New()
			tc.run(r)
			if got := render(r.Listener(tc.key)); got != tc.want {
				t.Errorf("holders %s, want %s", got, tc.want)
			}
		})
	}
}

// The kernel's accept counts name an acceptor by pid alone (serve): the
// name a scan found stays, and a pid no scan listed asks for a scan.
func TestRegistryAcceptorByPID(t *testing.T) {
	k := Key{Netns: 7, Inode: 100}
	r := New()
	r.Load([]snapshot.Socket{listening(100, "127.0.0.1:80", 3120, 3121)}, at(0), false)
	r.Accepted(k, 3121, "", at(1))
	set := r.Listener(k)
	if render(set) != "3121*,3120" || set.Holders[0].Comm != "nginx" {
		t.Errorf("holders %s, the acceptor named %q; want 3121*,3120 and nginx", render(set), set.Holders[0].Comm)
	}
	if got := r.Missed(); len(got) != 0 {
		t.Errorf("missed %v: the scan named the acceptor", got)
	}
	// a worker forked since the scan: only a scan can name it
	r.Accepted(k, 4000, "", at(2))
	if got := r.Missed(); len(got) != 1 || got[0] != k {
		t.Errorf("missed %v, want [%v]: an acceptor no scan listed", got, k)
	}
}

// SO_REUSEPORT: each worker has a listener of its own on one address; the
// BPF side names one of them for every child, so a child's holders are the
// group's. Another address on the same port is another group.
func TestRegistryGroup(t *testing.T) {
	r := New()
	r.Load([]snapshot.Socket{
		listening(201, "0.0.0.0:443", 11), listening(202, "0.0.0.0:443", 12),
		listening(203, "127.0.0.1:443", 13),
	}, at(0), false)
	r.Accepted(Key{Netns: 7, Inode: 202}, 12, "nginx", at(1))
	for _, tc := range []struct {
		key             uint64
		listener, group string
	}{
		{201, "11", "12*,11"},
		{202, "12*", "12*,11"},
		{203, "13", "13"},
	} {
		k := Key{Netns: 7, Inode: tc.key}
		if got := render(r.Listener(k)); got != tc.listener {
			t.Errorf("listener %d: %s, want %s", tc.key, got, tc.listener)
		}
		if got := render(r.Group(k)); got != tc.group {
			t.Errorf("group of %d: %s, want %s", tc.key, got, tc.group)
		}
	}
}

// A lookup of a listener no scan listed asks for one, once.
func TestRegistryMissed(t *testing.T) {
	r := New()
	k := Key{Netns: 7, Inode: 300}
	if r.Listener(k) != nil || r.Group(k) != nil {
		t.Fatal("holders of an unknown listener")
	}
	if got := r.Missed(); len(got) != 1 || got[0] != k {
		t.Errorf("missed %v, want [%v]", got, k)
	}
	if got := r.Missed(); len(got) != 0 {
		t.Errorf("missed again %v, want none", got)
	}
	r.Load([]snapshot.Socket{listening(300, "127.0.0.1:80", 1)}, at(0), true)
	r.Listener(k)
	if got := r.Missed(); len(got) != 0 {
		t.Errorf("missed after a load listed it: %v", got)
	}
}

// Seeds: one owner per socket by cookie, and the listeners with every
// holder, for the tracer.
func TestSeeds(t *testing.T) {
	ln := listening(100, "127.0.0.1:80", 3120, 3121)
	ln.Cookie = 55
	conn := snapshot.Socket{Protocol: snapshot.TCP, State: tcpstate.CloseWait, Netns: 7, Inode: 101, Cookie: 56,
		Local: netip.MustParseAddrPort("127.0.0.1:80"), Remote: netip.MustParseAddrPort("127.0.0.1:5000"),
		Processes: []snapshot.Process{{PID: 3121, Comm: "nginx"}}}
	orphan := conn
	orphan.Cookie, orphan.Processes = 57, nil
	listeners, owners := Seeds([]snapshot.Socket{ln, conn, orphan})
	if len(listeners) != 1 || listeners[0].Inode != 100 || listeners[0].Owner.PID != 3120 ||
		fmt.Sprint(listeners[0].Holders) != "[3120 3121]" || listeners[0].Addr != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("listener seeds %+v", listeners)
	}
	if len(owners) != 2 || owners[0].Cookie != 55 || owners[1].Cookie != 56 || owners[1].Owner.PID != 3121 {
		t.Errorf("owner seeds %+v, want cookies 55 and 56 (57 has no owner)", owners)
	}
}

// Forget drops a listener a partial load would keep, group and all.
func TestRegistryForget(t *testing.T) {
	r := New()
	r.Load([]snapshot.Socket{listening(201, "0.0.0.0:443", 11), listening(202, "0.0.0.0:443", 12)}, at(0), true)
	r.Forget(Key{Netns: 7, Inode: 201})
	if got := render(r.Group(Key{Netns: 7, Inode: 202})); got != "12" {
		t.Errorf("group after forgetting 201: %s, want 12", got)
	}
	if got := render(r.Listener(Key{Netns: 7, Inode: 201})); got != "-" {
		t.Errorf("forgotten listener: %s, want nothing", got)
	}
}

// The brief path names the owners Seeds would name, from owners in any
// order: the lowest pid, then the lowest fd, of each inode's holders.
func TestOwnerSeeds(t *testing.T) {
	owners := []snapshot.Owner{
		{Inode: 20, Process: snapshot.Process{PID: 900, Comm: "late", FD: 3}},
		{Inode: 10, Process: snapshot.Process{PID: 700, Comm: "worker", FD: 9}},
		{Inode: 10, Process: snapshot.Process{PID: 700, Comm: "worker", FD: 4}},
		{Inode: 20, Process: snapshot.Process{PID: 100, Comm: "master", FD: 5}},
		{Inode: 30, Process: snapshot.Process{PID: 300, Comm: "other", FD: 1}},
	}
	SortOwners(owners)
	briefs := []Brief{
		{Inode: 20, Cookie: 2, CgroupID: 77},
		{Inode: 10, Cookie: 1},
		{Inode: 40, Cookie: 4}, // no process holds it
		{Inode: 30, Cookie: 0}, // no cookie to key it by
	}
	got := OwnerSeeds(briefs, owners)
	want := []tracer.OwnerSeed{
		{Cookie: 2, Owner: tracer.Task{PID: 100, Comm: "master", CgroupID: 77}},
		{Cookie: 1, Owner: tracer.Task{PID: 700, Comm: "worker"}},
	}
	if !slices.Equal(got, want) {
		t.Errorf("OwnerSeeds = %+v, want %+v", got, want)
	}
	if p := Processes(owners, 10); len(p) != 2 || p[0].FD != 4 || p[1].FD != 9 {
		t.Errorf("Processes(10) = %+v, want fd 4 then fd 9", p)
	}
	if p := Processes(owners, 20); len(p) != 2 || p[0].PID != 100 || p[1].PID != 900 {
		t.Errorf("Processes(20) = %+v, want pid 100 then 900", p)
	}
	if p := Processes(owners, 40); p != nil {
		t.Errorf("Processes(40) = %+v, want none", p)
	}
}
