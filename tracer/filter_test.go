package tracer

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/testutil"
)

func ownNetns(t *testing.T) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

// Each kernel-side filter drops one connection and keeps another; the kept
// one arriving after the dropped one shows the drop was not just slowness.
func TestFilters(t *testing.T) {
	pid := uint32(os.Getpid())
	for _, tc := range []struct {
		name       string
		opts       Options
		drop, keep func(t *testing.T) *conn
		keepN      int // events kept of the kept connection
	}{
		{"ipv6 only", Options{PID: pid, IPv6Only: true}, v4conn, v6conn, 13},
		// The [::] listener and its child's LISTEN>SYN_RECV (which still
		// carries the listener's tuple) are IPv6: 3 of 13 go.
		{"ipv4 only keeps v4-mapped", Options{PID: pid, IPv4Only: true}, v6conn, dualStackConn, 10},
		{"own netns", Options{PID: pid, Netns: 0}, nil, v4conn, 13}, // Netns set below
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "own netns" {
				tc.opts.Netns = ownNetns(t)
			}
			col := startTracer(t, tc.opts)
			var dropped *conn
			if tc.drop != nil {
				dropped = tc.drop(t)
				dropped.closeInOrder(t, dropped.client, dropped.server)
			}
			kept := tc.keep(t)
			kept.closeInOrder(t, kept.client, kept.server)
			col.waitEvents(t, kept.port, tc.keepN)
			if dropped != nil {
				if got := col.snapshot(dropped.port); len(got) != 0 {
					t.Errorf("%d events for the filtered-out connection, first %s", len(got), transition(got[0]))
				}
			}
		})
	}
}

// With the kernel skipping wake-ups, the reader's timer is what delivers a
// quiet connection's events: within FlushInterval, plus scheduling. The
// default 25ms leaves the other half of the 50ms budget to scheduling; a
// 10ms interval here leaves room for scheduling on a loaded machine, and the
// budget is scaled for emulated kernel-matrix VMs.
func TestQuietLatency(t *testing.T) {
	col := startTracer(t, Options{PID: uint32(os.Getpid()), FlushInterval: 10 * time.Millisecond})
	c := v4conn(t)
	c.closeInOrder(t, c.client, c.server)
	col.waitEvents(t, c.port, 13)
	col.mu.Lock()
	lat := slices.Clone(col.latency)
	col.mu.Unlock()
	slices.Sort(lat)
	if med, budget := lat[len(lat)/2], testutil.Scaled(50*time.Millisecond); med > budget {
		t.Errorf("median delay from kernel to reader %v, want at most %v (all: %v)", med, budget, fmt.Sprint(lat))
	}
}

// A ring nobody reads fills up; every event that finds it full is counted.
func TestLostCounted(t *testing.T) {
	testutil.RequireRoot(t)
	tr, err := New(Options{PID: uint32(os.Getpid()), RingSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	const conns = 5 // 13 events each, the ring holds about 20
	for range conns {
		c := v4conn(t)
		c.closeInOrder(t, c.client, c.server)
	}
	// The last connection's final transitions run in the loopback softirq,
	// which a loaded kernel defers to ksoftirqd: wait for them.
	capacity := 4096 / (wireSize + 8)
	want := uint64(conns*13 - capacity)
	testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("at least %d lost", want), func() bool { return tr.Lost() >= want })
}

// A port set keeps connections on any of its ports (either side) and no
// other: the connection to the port left out goes first, so its events
// would be in by the time the others' are.
func TestPortSetFilter(t *testing.T) {
	var lns [3]net.Listener
	var ports [3]uint16
	for i := range lns {
		lns[i], ports[i] = plainListener(t)
	}
	col := startTracer(t, Options{Ports: []uint16{ports[1], ports[2]}})
	for _, i := range []int{0, 1, 2} {
		c, err := net.Dial("tcp4", lns[i].Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := lns[i].Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		s.Close()
	}
	// client: CLOSE>SYN_SENT, SYN_SENT>ESTABLISHED, ESTABLISHED>FIN_WAIT1,
	// FIN_WAIT1>FIN_WAIT2; child: LISTEN>SYN_RECV, SYN_RECV>ESTABLISHED,
	// accept, ESTABLISHED>CLOSE_WAIT, CLOSE_WAIT>LAST_ACK, LAST_ACK>CLOSE,
	// then the client's FIN_WAIT2>CLOSE: at least the first ten
	for _, p := range ports[1:] {
		col.waitEvents(t, p, 10)
	}
	if got := col.snapshot(ports[0]); len(got) != 0 {
		t.Errorf("%d events on port %d, not in the set; first %s", len(got), ports[0], transition(got[0]))
	}
}

// Port sets are bounded by what the BPF side holds, and 0 is no port.
func TestPortSetLimits(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Ports: make([]uint16, 9)}, "9 ports in one filter: at most 8"},
		{Options{DPorts: []uint16{80, 0}}, "port 0 in a filter"},
	} {
		if tr, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want %q", tc.opts, err, tc.want)
			if tr != nil {
				tr.Close()
			}
		}
	}
}

// The cgroup filter keeps the sockets created in its cgroups, whoever holds
// them later, and a cgroup added while running; and every kept event names
// the cgroup its socket was created in (read by CO-RE: the kernel matrix
// covers 5.10's older sock_cgroup_data).
func TestCgroupFilter(t *testing.T) {
	testutil.RequireRoot(t)
	base := fmt.Sprintf("/socklife-tracer-%d", os.Getpid())
	inX, idX := testutil.Cgroup(t, base+"/x")
	inY, idY := testutil.Cgroup(t, base+"/y")
	col := startTracer(t, Options{ByCgroup: true, Cgroups: []uint64{idX}})

	host := v4conn(t)
	host.closeInOrder(t, host.client, host.server)
	var early, kept, late *conn
	testutil.InCgroup(t, inY, func() { early = v4conn(t) })
	early.closeInOrder(t, early.client, early.server)
	testutil.InCgroup(t, inX, func() { kept = v4conn(t) })
	kept.closeInOrder(t, kept.client, kept.server) // held by the host now
	for _, ev := range col.waitEvents(t, kept.port, 13) {
		if ev.SockCgroupID != idX {
			t.Errorf("%s: socket cgroup %d, want %d", transition(ev), ev.SockCgroupID, idX)
		}
	}
	for _, c := range []*conn{host, early} {
		if got := col.snapshot(c.port); len(got) != 0 {
			t.Errorf("%d events of a connection outside the cgroups, first %s", len(got), transition(got[0]))
		}
	}
	if err := col.tr.AddCgroups(idY); err != nil {
		t.Fatal(err)
	}
	testutil.InCgroup(t, inY, func() { late = v4conn(t) })
	late.closeInOrder(t, late.client, late.server)
	col.waitEvents(t, late.port, 13)
}
