package live

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

const (
	est  = tcpstate.Established
	syns = tcpstate.SynSent
	synr = tcpstate.SynRecv
	fw1  = tcpstate.FinWait1
	fw2  = tcpstate.FinWait2
	cls  = tcpstate.Close
	cw   = tcpstate.CloseWait
	la   = tcpstate.LastAck
	lst  = tcpstate.Listen
)

var t0 = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// recorder is a table whose closed connections are kept, as copies.
type recorder struct {
	t      *Table
	closed []Conn
}

func newRecorder() *recorder {
	r := &recorder{}
	r.t = NewTable(func(c *Conn) error {
		cp := *c
		cp.History = slices.Clone(c.History)
		r.closed = append(r.closed, cp)
		return nil
	})
	return r
}

// ev is a state change of sock at t0+ms milliseconds.
func ev(sock uint64, old, new tcpstate.State, local, remote string, ms int) *tracer.Event {
	return &tracer.Event{
		Kind: tracer.StateChange, Time: t0.Add(time.Duration(ms) * time.Millisecond),
		Sock: sock, Netns: 1, Family: unix.AF_INET,
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote),
		Old: old, New: new,
	}
}

func owned(e *tracer.Event, pid uint32, comm string) *tracer.Event {
	e.OwnerSource, e.Owner = tracer.OwnerTask, tracer.Task{PID: pid, Comm: comm}
	return e
}

func (r *recorder) apply(tb testing.TB, evs ...*tracer.Event) {
	tb.Helper()
	for _, e := range evs {
		if err := r.t.Apply(e); err != nil {
			tb.Fatal(err)
		}
	}
}

// steps renders a history as "SYN_SENT@0 ESTABLISHED@1 ..." with
// milliseconds after t0, or "?" for an unknown entry time.
func steps(h []Step) string {
	var b strings.Builder
	for i, s := range h {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.State.KernelName() + "@")
		if s.EnteredAt.IsZero() {
			b.WriteByte('?')
		} else {
			b.WriteString(s.EnteredAt.Sub(t0).Round(time.Millisecond).String())
		}
	}
	return b.String()
}

func (r *recorder) open() []Conn {
	var out []Conn
	r.t.Each(func(c *Conn) bool {
		cp := *c
		cp.History = slices.Clone(c.History)
		out = append(out, cp)
		return true
	})
	return out
}

func sock(state tcpstate.State, local, remote string, inode uint64, procs ...snapshot.Process) snapshot.Socket {
	return snapshot.Socket{
		Protocol: snapshot.TCP, Family: unix.AF_INET, State: state, Netns: 1,
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote),
		Inode: inode, Processes: procs,
	}
}

const (
	cli     = "10.0.0.1:40000"
	srv     = "10.0.0.2:80"
	anyAddr = "0.0.0.0:0"
)

// curlCloses is curl connecting 0xa from cli to srv and closing it first:
// SYN_SENT at 0ms, ESTABLISHED at 1ms, FIN_WAIT1 at 5ms.
func curlCloses() []*tracer.Event {
	return []*tracer.Event{
		owned(ev(0xa, cls, syns, "0.0.0.0:0", srv, 0), 7, "curl"),
		ev(0xa, syns, est, cli, srv, 1),
		owned(ev(0xa, est, fw1, cli, srv, 5), 7, "curl"),
	}
}

func TestClientLifecycle(t *testing.T) {
	r := newRecorder()
	r.apply(t, curlCloses()...)
	r.apply(t, ev(0xa, fw1, fw2, cli, srv, 6))
	closing := ev(0xa, fw2, cls, cli, srv, 7)
	closing.HasClose, closing.Close = true, tracer.CloseStats{BytesAcked: 100, BytesReceived: 200, TotalRetrans: 1, SRTT: 30 * time.Microsecond}
	r.apply(t, closing)
	if r.t.Len() != 0 || len(r.closed) != 1 {
		t.Fatalf("after close: %d open, %d closed; want 0, 1", r.t.Len(), len(r.closed))
	}
	c := r.closed[0]
	if got, want := steps(c.History), "SYN_SENT@0s ESTABLISHED@1ms FIN_WAIT1@5ms FIN_WAIT2@6ms"; got != want {
		t.Errorf("history %s, want %s", got, want)
	}
	if !c.SeenFromStart || c.Role != RoleClient || c.ClosedBy != ClosedByLocal || c.PID != 7 || c.Comm != "curl" {
		t.Errorf("seen %v role %v closed by %v owner %d/%s; want true client local 7/curl", c.SeenFromStart, c.Role, c.ClosedBy, c.PID, c.Comm)
	}
	if c.Local.String() != cli || !c.OpenedAt.Equal(t0) || c.EstablishedAt.Sub(t0) != time.Millisecond || c.ClosedAt.Sub(t0) != 7*time.Millisecond {
		t.Errorf("local %s opened %v established %v closed %v", c.Local, c.OpenedAt, c.EstablishedAt, c.ClosedAt)
	}
	if !c.HasStats || c.Stats.BytesAcked != 100 || c.Stats.BytesReceived != 200 || c.Stats.TotalRetrans != 1 || c.Stats.SRTT != 30*time.Microsecond {
		t.Errorf("stats %+v", c.Stats)
	}
}

// The child of a listener first shows the listener's tuple with remote
// port 0; its own tuple comes at SYN_RECV->ESTABLISHED.
func TestServerChild(t *testing.T) {
	r := newRecorder()
	r.t.Load([]snapshot.Socket{sock(lst, "0.0.0.0:80", anyAddr, 11, snapshot.Process{PID: 9, Comm: "nginx"})}, t0)
	r.apply(t,
		ev(0xc, lst, synr, "0.0.0.0:80", anyAddr, 10),
		ev(0xc, synr, est, srv, cli, 11),
	)
	acc := owned(ev(0xc, est, est, srv, cli, 14), 9, "nginx")
	acc.Kind, acc.InState, acc.InStateKnown = tracer.Accept, 3*time.Millisecond, true
	r.apply(t, acc,
		ev(0xc, est, cw, srv, cli, 20),
		owned(ev(0xc, cw, la, srv, cli, 21), 9, "nginx"),
		ev(0xc, la, cls, srv, cli, 22),
	)
	if len(r.closed) != 1 || r.t.Len() != 1 {
		t.Fatalf("%d closed, %d open; want 1 and the listener", len(r.closed), r.t.Len())
	}
	c := r.closed[0]
	if got, want := steps(c.History), "SYN_RECV@10ms ESTABLISHED@11ms CLOSE_WAIT@20ms LAST_ACK@21ms"; got != want {
		t.Errorf("history %s, want %s", got, want)
	}
	if c.Role != RoleServer || c.Listener.String() != "0.0.0.0:80" || c.Local.String() != srv || c.Remote.String() != cli {
		t.Errorf("role %v listener %v tuple %v %v", c.Role, c.Listener, c.Local, c.Remote)
	}
	if !c.AcceptWaitKnown || c.AcceptWait != 3*time.Millisecond || c.ClosedBy != ClosedByRemote || c.Comm != "nginx" {
		t.Errorf("accept wait %v (%v), closed by %v, comm %q", c.AcceptWait, c.AcceptWaitKnown, c.ClosedBy, c.Comm)
	}
	if ln := r.open()[0]; ln.Role != RoleListener || ln.Accepts != 1 {
		t.Errorf("listener %v counts %d accepts, want 1", ln.Role, ln.Accepts)
	}
}

func TestClosedBy(t *testing.T) {
	for _, tc := range []struct {
		name string
		path []tcpstate.State
		want ClosedBy
	}{
		{"local FIN", []tcpstate.State{syns, est, fw1, fw2, cls}, ClosedByLocal},
		{"remote FIN", []tcpstate.State{syns, est, cw, la, cls}, ClosedByRemote},
		{"reset while established", []tcpstate.State{syns, est, cls}, ClosedByReset},
		{"refused connect", []tcpstate.State{syns, cls}, ClosedByReset},
		{"reset after remote FIN", []tcpstate.State{syns, est, cw, cls}, ClosedByRemote},
		{"reset after local FIN", []tcpstate.State{syns, est, fw1, cls}, ClosedByLocal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecorder()
			old := cls
			for i, s := range tc.path {
				r.apply(t, ev(1, old, s, cli, srv, i))
				old = s
			}
			if len(r.closed) != 1 || r.closed[0].ClosedBy != tc.want {
				t.Fatalf("closed %v, want one closed by %v", r.closed, tc.want)
			}
		})
	}
}

// Sock addresses are reused once a socket is freed: the next socket at the
// same address is a new connection.
func TestSockReuse(t *testing.T) {
	r := newRecorder()
	r.apply(t,
		ev(1, cls, syns, anyAddr, srv, 0), ev(1, syns, est, cli, srv, 1), ev(1, est, cls, cli, srv, 2),
		ev(1, cls, syns, anyAddr, srv, 3), ev(1, syns, est, "10.0.0.1:40001", srv, 4),
	)
	open := r.open()
	if len(r.closed) != 1 || len(open) != 1 || open[0].ID == r.closed[0].ID {
		t.Fatalf("closed %d, open %d (ids %v); want one each, different ids", len(r.closed), len(open), open)
	}
	if got := steps(open[0].History); got != "SYN_SENT@3ms ESTABLISHED@4ms" || open[0].Local.Port() != 40001 {
		t.Errorf("reused sock: history %s local %v", got, open[0].Local)
	}
	// Reuse without the CLOSE (lost): the old one is reported closed at an unknown time.
	r.apply(t, ev(1, cls, syns, anyAddr, srv, 10))
	if len(r.closed) != 2 || !r.closed[1].ClosedAt.IsZero() || r.t.Len() != 1 {
		t.Errorf("after reuse without CLOSE: %d closed (last at %v), %d open", len(r.closed), r.closed[len(r.closed)-1].ClosedAt, r.t.Len())
	}
}

// The role of a socket older than the tracer is said only when the
// listeners in its netns tell it; else it is unknown, never a guess.
func TestSnapshotRole(t *testing.T) {
	for _, tc := range []struct {
		name          string
		listen        string // a listener's address, "" for none
		local, remote string
		want          Role
	}{
		{"accepted from a listener", "0.0.0.0:80", "10.0.0.2:80", cli, RoleServer},
		{"server whose listener closed", "", "10.0.0.2:80", cli, RoleUnknown},
		{"connected out", "", cli, "10.0.0.3:443", RoleUnknown},
		{"connected to a listener over loopback", "0.0.0.0:80", "127.0.0.1:40000", "127.0.0.1:80", RoleClient},
		{"connected to its own address", "0.0.0.0:80", "10.0.0.2:40000", "10.0.0.2:80", RoleClient},
		{"connected to a listener's bound address", "10.0.0.9:80", "10.0.0.2:40000", "10.0.0.9:80", RoleClient},
		// the peer elsewhere has the port a wildcard listener here has
		{"peer port of a wildcard listener", "0.0.0.0:80", "10.0.0.2:40000", "10.0.0.3:80", RoleUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecorder()
			socks := []snapshot.Socket{sock(est, tc.local, tc.remote, 2)}
			if tc.listen != "" {
				socks = append(socks, sock(lst, tc.listen, anyAddr, 1))
			}
			r.t.Load(socks, t0)
			for _, c := range r.open() {
				if c.State == est && c.Role != tc.want {
					t.Errorf("role %v, want %v", c.Role, tc.want)
				}
			}
		})
	}
}

// A socket that predates the tracer: the snapshot has it, the events join
// it by tuple and from then on by sock.
func TestSnapshotJoin(t *testing.T) {
	r := newRecorder()
	r.t.Load([]snapshot.Socket{
		sock(lst, "10.0.0.2:80", anyAddr, 10),
		sock(est, srv, cli, 11, snapshot.Process{PID: 9, Comm: "nginx"}),
		sock(est, cli, "10.0.0.3:443", 12),
		sock(tcpstate.TimeWait, "10.0.0.1:5", "10.0.0.3:443", 0),
		sock(tcpstate.TimeWait, "10.0.0.1:6", "10.0.0.3:443", 0),
	}, t0)
	if n := r.t.Counts(); n[est] != 2 || n[lst] != 1 || n[tcpstate.TimeWait] != 2 || r.t.Len() != 3 {
		t.Fatalf("counts %v len %d", n, r.t.Len())
	}
	roles := map[string]string{}
	for _, c := range r.open() {
		roles[c.Local.String()+">"+c.Remote.String()] = c.Role.String() + " " + c.Listener.String()
		if c.SeenFromStart || len(c.History) != 1 || !c.History[0].EnteredAt.IsZero() || !c.AtLeast.Equal(t0) {
			t.Errorf("%v: seen %v history %s at least %v; want false, one step of unknown time, t0", c.Local, c.SeenFromStart, steps(c.History), c.AtLeast)
		}
	}
	if roles[srv+">"+cli] != "server 10.0.0.2:80" || roles[cli+">10.0.0.3:443"] != "unknown invalid AddrPort" {
		t.Errorf("roles %v", roles)
	}
	r.apply(t, ev(0x5, est, cw, srv, cli, 100), ev(0x5, cw, la, srv, cli, 200), ev(0x5, la, cls, srv, cli, 201))
	if len(r.closed) != 1 || r.t.Len() != 2 {
		t.Fatalf("%d closed %d open, want 1 and 2", len(r.closed), r.t.Len())
	}
	c := r.closed[0]
	if got := steps(c.History); got != "ESTABLISHED@? CLOSE_WAIT@100ms LAST_ACK@200ms" || c.Comm != "nginx" || c.Inode != 11 || c.SeenFromStart || c.ClosedBy != ClosedByRemote {
		t.Errorf("history %s comm %q inode %d seen %v closed by %v", got, c.Comm, c.Inode, c.SeenFromStart, c.ClosedBy)
	}
}

// Events buffered while the snapshot ran are replayed over it: each socket
// ends up once, whether the snapshot saw it or not.
func TestSnapshotWindow(t *testing.T) {
	r := newRecorder()
	// In the snapshot: a client that connected in the window, and a
	// listener created in it. Not in it: one opened and closed in the
	// window, and an older one that closed before the dump reached it.
	r.t.Load([]snapshot.Socket{
		sock(est, cli, srv, 21, snapshot.Process{PID: 3, Comm: "app"}),
		sock(lst, "0.0.0.0:8080", anyAddr, 22),
	}, t0.Add(50*time.Millisecond))
	r.t.SetSnapshotTime(t0.Add(50 * time.Millisecond))
	r.apply(t,
		ev(1, cls, syns, anyAddr, srv, 1), ev(1, syns, est, cli, srv, 2),
		ev(2, cls, lst, "0.0.0.0:8080", anyAddr, 3),
		ev(3, cls, syns, anyAddr, srv, 4), ev(3, syns, est, "10.0.0.1:40003", srv, 5), ev(3, est, cls, "10.0.0.1:40003", srv, 6),
		ev(4, est, fw1, "10.0.0.1:39999", srv, 7), ev(4, fw1, fw2, "10.0.0.1:39999", srv, 8), ev(4, fw2, cls, "10.0.0.1:39999", srv, 9),
	)
	open := r.open()
	if len(open) != 2 || len(r.closed) != 2 {
		t.Fatalf("%d open, %d closed; want 2 and 2: %+v", len(open), len(r.closed), open)
	}
	for _, c := range open {
		if !c.SeenFromStart || c.Inode == 0 {
			t.Errorf("%v %v: seen from start %v inode %d; want the events' history and the snapshot's inode", c.Local, c.State, c.SeenFromStart, c.Inode)
		}
	}
	if r.closed[0].Local.Port() != 40003 || !r.closed[0].SeenFromStart || r.closed[1].Local.Port() != 39999 || r.closed[1].SeenFromStart {
		t.Errorf("closed %v (seen %v), %v (seen %v)", r.closed[0].Local, r.closed[0].SeenFromStart, r.closed[1].Local, r.closed[1].SeenFromStart)
	}
	// A listener created after the snapshot on the same tuple
	// (SO_REUSEPORT) is a second listener.
	r.apply(t, ev(5, cls, lst, "0.0.0.0:8080", anyAddr, 60))
	if n := r.t.Counts()[lst]; n != 2 {
		t.Errorf("%d listeners after a reuseport one, want 2", n)
	}
}

func TestReuseportListeners(t *testing.T) {
	r := newRecorder()
	r.t.Load([]snapshot.Socket{sock(lst, "0.0.0.0:80", anyAddr, 1), sock(lst, "0.0.0.0:80", anyAddr, 2)}, t0)
	r.apply(t, ev(9, lst, cls, "0.0.0.0:80", anyAddr, 1))
	if n := r.t.Counts()[lst]; n != 1 || len(r.closed) != 1 {
		t.Fatalf("%d listeners, %d closed after one of two closes; want 1, 1", n, len(r.closed))
	}
	// The port still listens: a snapshot socket on it is a server.
	r.t.Load([]snapshot.Socket{sock(est, "10.0.0.2:80", cli, 3)}, t0)
	for _, c := range r.open() {
		if c.State == est && c.Role != RoleServer {
			t.Errorf("socket on a listening port: role %v", c.Role)
		}
	}
}

func TestResync(t *testing.T) {
	r := newRecorder()
	r.t.Load([]snapshot.Socket{
		sock(est, "10.0.0.1:40005", srv, 35), // older than the tracer, closed, event buffered
	}, t0)
	r.apply(t,
		ev(1, cls, syns, anyAddr, srv, 0), ev(1, syns, est, cli, srv, 1), // still there, now CLOSE_WAIT
		ev(2, cls, syns, anyAddr, srv, 2), ev(2, syns, est, "10.0.0.1:40002", srv, 3), // closed unseen
		ev(3, cls, syns, anyAddr, srv, 4), ev(3, syns, est, "10.0.0.1:40003", srv, 5), // closed, event buffered
	)
	buffered := []tracer.Event{*ev(3, est, cls, "10.0.0.1:40003", srv, 6), *ev(5, est, cls, "10.0.0.1:40005", srv, 7)}
	err := r.t.Resync([]snapshot.Socket{
		sock(cw, cli, srv, 31),
		sock(est, "10.0.0.1:40004", srv, 34), // opened unseen
	}, t0.Add(time.Second), buffered)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.closed) != 1 || r.closed[0].Local.Port() != 40002 || !r.closed[0].ClosedAt.IsZero() {
		t.Fatalf("closed by resync: %+v; want 40002 with no close time", r.closed)
	}
	for i := range buffered {
		r.apply(t, &buffered[i])
	}
	got := map[uint16]string{}
	for _, c := range r.open() {
		got[c.Local.Port()] = steps(c.History) + " " + c.ClosedBy.String()
	}
	want := map[uint16]string{
		40000: "SYN_SENT@0s ESTABLISHED@1ms CLOSE_WAIT@? remote",
		40004: "ESTABLISHED@? unknown",
	}
	// each buffered close closes its connection once, with its time
	closedAt := map[uint16]int{}
	for _, c := range r.closed {
		if !c.ClosedAt.IsZero() {
			closedAt[c.Local.Port()]++
		}
	}
	if len(got) != len(want) || got[40000] != want[40000] || got[40004] != want[40004] || len(r.closed) != 3 || closedAt[40003] != 1 || closedAt[40005] != 1 {
		t.Errorf("after resync: %v, %d closed (with a close time: %v); want %v, 3, 40003 and 40005 once each", got, len(r.closed), closedAt, want)
	}
}

// An event read after the resync that reported its socket closed, though
// older than the resync's snapshot, starts no second entry (and record) of
// the connection; a socket born later under the same sock pointer is new.
func TestResyncLateEvents(t *testing.T) {
	r := newRecorder()
	r.t.Load([]snapshot.Socket{sock(est, "10.0.0.1:40005", srv, 35)}, t0) // only the snapshot named it
	r.apply(t, ev(2, cls, syns, anyAddr, srv, 2), ev(2, syns, est, "10.0.0.1:40002", srv, 3))
	if err := r.t.Resync(nil, t0.Add(time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if len(r.closed) != 2 {
		t.Fatalf("%d closed by the resync, want 2", len(r.closed))
	}
	r.apply(t, ev(2, est, cls, "10.0.0.1:40002", srv, 500), ev(9, est, cls, "10.0.0.1:40005", srv, 600))
	if len(r.closed) != 2 || r.t.Len() != 0 {
		t.Errorf("late events: %d closed, %d open; want still 2 and 0", len(r.closed), r.t.Len())
	}
	r.apply(t, ev(2, cls, syns, anyAddr, srv, 1500), ev(2, syns, est, "10.0.0.1:40006", srv, 1501), ev(2, est, cls, "10.0.0.1:40006", srv, 1502))
	if len(r.closed) != 3 || r.closed[2].Local.Port() != 40006 {
		t.Errorf("a new socket under the same sock: %d closed, want 3, the last on 40006", len(r.closed))
	}
}

func TestHistoryOverflowKeepsCurrent(t *testing.T) {
	var h history
	for i := range maxSteps + 3 {
		h.push(tcpstate.State(1+i%10), int64(i+1))
	}
	if h.n != maxSteps || h.at[0] != 1 || h.at[maxSteps-1] != maxSteps+3 {
		t.Errorf("history %+v: want the first steps and the latest last", h)
	}
}

// On 6.18 the child's LISTEN->SYN_RECV already has its own tuple: it joins
// the snapshot's view of it at once, and names its wildcard listener.
func TestChildWithFullTuple(t *testing.T) {
	r := newRecorder()
	r.t.Load([]snapshot.Socket{sock(lst, "0.0.0.0:80", anyAddr, 1), sock(est, srv, cli, 2)}, t0)
	r.t.SetSnapshotTime(t0)
	r.apply(t, ev(7, lst, synr, srv, cli, -2), ev(7, synr, est, srv, cli, -1))
	open := r.open()
	if len(open) != 2 {
		t.Fatalf("%d open, want the listener and one child: %+v", len(open), open)
	}
	for _, c := range open {
		if c.Role == RoleServer && (c.Listener.String() != "0.0.0.0:80" || c.Inode != 2 || !c.SeenFromStart) {
			t.Errorf("child: listener %v inode %d seen %v; want 0.0.0.0:80, 2, true", c.Listener, c.Inode, c.SeenFromStart)
		}
	}
}

// accept() can return a child the peer already reset: it is not tracked.
func TestAcceptOfClosedChild(t *testing.T) {
	r := newRecorder()
	acc := ev(0xd, cls, cls, srv, cli, 1)
	acc.Kind = tracer.Accept
	r.apply(t, acc)
	if r.t.Len() != 0 {
		t.Errorf("%d tracked after accepting a closed child, want 0", r.t.Len())
	}
}

// A dual-stack socket talking IPv4: sock_diag shows v4-mapped addresses,
// events show IPv4 ones. They are the same socket.
func TestJoinV4Mapped(t *testing.T) {
	r := newRecorder()
	s := sock(est, "[::ffff:10.0.0.2]:80", "[::ffff:10.0.0.1]:40000", 5)
	s.Family = unix.AF_INET6
	r.t.Load([]snapshot.Socket{s}, t0)
	e := ev(0xe, est, cw, srv, cli, 1)
	e.Family = unix.AF_INET6
	r.apply(t, e)
	open := r.open()
	if len(open) != 1 || open[0].Inode != 5 || open[0].Local.String() != srv || open[0].State != cw {
		t.Errorf("after the event: %+v; want the snapshot's socket, now CLOSE_WAIT, shown unmapped", open)
	}
}

// A child names the listener the kernel took it from: the one bound to
// its own address, else its family's wildcard ([::] takes IPv4 too).
// redis's Debian default listens on 127.0.0.1 and ::1 with one port.
func TestListenerByAddress(t *testing.T) {
	for _, tc := range []struct {
		name      string
		listeners []string
		child     string // the child's local address
		want      string // "" : no listener (a client)
	}{
		{"redis ::1", []string{"127.0.0.1:6379", "[::1]:6379"}, "[::1]:6379", "[::1]:6379"},
		{"redis 127.0.0.1", []string{"127.0.0.1:6379", "[::1]:6379"}, "127.0.0.1:6379", "127.0.0.1:6379"},
		{"redis, v6 first", []string{"[::1]:6379", "127.0.0.1:6379"}, "127.0.0.1:6379", "127.0.0.1:6379"},
		{"IPv4 wildcard", []string{"0.0.0.0:80"}, "10.0.0.2:80", "0.0.0.0:80"},
		{"dual-stack wildcard, IPv4 child", []string{"[::]:80"}, "10.0.0.2:80", "[::]:80"},
		{"both wildcards, IPv4 child", []string{"[::]:80", "0.0.0.0:80"}, "10.0.0.2:80", "0.0.0.0:80"},
		{"both wildcards, IPv6 child", []string{"0.0.0.0:80", "[::]:80"}, "[2001:db8::2]:80", "[::]:80"},
		{"specific before wildcard", []string{"0.0.0.0:80", "10.0.0.2:80"}, "10.0.0.2:80", "10.0.0.2:80"},
		{"another address only", []string{"10.0.0.3:80"}, "10.0.0.2:80", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecorder()
			for i, l := range tc.listeners {
				r.apply(t, owned(ev(uint64(0x100+i), cls, lst, l, anyAddr, 0), 9, "redis"))
			}
			// one seen from its handshake, one found by a snapshot
			r.apply(t, ev(0x1, lst, synr, tc.child, "10.0.0.1:40000", 1))
			r.t.Load([]snapshot.Socket{sock(est, tc.child, "10.0.0.1:40001", 77)}, t0.Add(2*time.Millisecond))
			for _, c := range r.open() {
				if c.Role == RoleListener {
					continue
				}
				got := ""
				if c.Role == RoleServer {
					got = c.Listener.String()
				}
				if c.Remote.Port() == 40001 && got != tc.want || c.Remote.Port() == 40000 && tc.want != "" && got != tc.want {
					t.Errorf("child %s from %v: role %s, listener %q, want %q", c.Local, c.Remote, c.Role, got, tc.want)
				}
			}
		})
	}
}

// shutdown() then close() is FIN_WAIT1 -> FIN_WAIT1: one stay in FIN_WAIT1,
// entered at the first.
func TestOneStayPerState(t *testing.T) {
	r := newRecorder()
	r.apply(t, curlCloses()...)
	r.apply(t,
		owned(ev(0xa, fw1, fw1, cli, srv, 6), 7, "curl"),
		ev(0xa, fw1, fw2, cli, srv, 7),
		ev(0xa, fw2, cls, cli, srv, 8),
	)
	if len(r.closed) != 1 {
		t.Fatalf("%d closed, want 1", len(r.closed))
	}
	if got, want := steps(r.closed[0].History), "SYN_SENT@0s ESTABLISHED@1ms FIN_WAIT1@5ms FIN_WAIT2@7ms"; got != want {
		t.Errorf("history %s, want %s", got, want)
	}
}

// A state no kernel has (a corrupt or future record, a snapshot of one)
// is refused and counted; indexed, it panicked in begin.
func TestUnknownStateRefused(t *testing.T) {
	r := newRecorder()
	for _, e := range []*tracer.Event{
		ev(1, cls, 13, "10.0.0.1:5000", "10.0.0.2:80", 1),
		ev(2, 200, est, "10.0.0.1:5001", "10.0.0.2:80", 2),
		ev(3, 0, syns, "10.0.0.1:5002", "10.0.0.2:80", 3),
		// mini sockets' states, which Counts takes from snapshots (the
		// fuzzer's find: counted twice, then hidden)
		ev(4, est, tcpstate.TimeWait, "10.0.0.1:5004", "10.0.0.2:80", 4),
		ev(5, tcpstate.NewSynRecv, est, "10.0.0.1:5005", "10.0.0.2:80", 5),
	} {
		if err := r.t.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	r.t.Load([]snapshot.Socket{{Protocol: snapshot.TCP, State: 99, Netns: 1,
		Local: netip.MustParseAddrPort("10.0.0.1:5003"), Remote: netip.MustParseAddrPort("10.0.0.2:80")}}, t0)
	if n := r.t.Len(); n != 0 {
		t.Errorf("table holds %d sockets, want 0", n)
	}
	if n := r.t.UnknownStates(); n != 5 {
		t.Errorf("UnknownStates = %d, want 5", n)
	}
}
