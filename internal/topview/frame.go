// Package topview turns the live socket table into what `socklife top` and
// `socklife closewait` show at each interval: state counts and their change,
// the event rate and losses, CLOSE_WAIT build-up per process, and the
// listeners with their accept queues.
package topview

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/socklife/socklife/internal/backlog"
	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/holders"
	"github.com/socklife/socklife/internal/live"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// Frame is one interval's picture.
type Frame struct {
	At       time.Time
	Interval time.Duration
	// States counts the sockets per state (TIME_WAIT from sock_diag);
	// Delta is the change since the previous frame.
	States, Delta [tcpstate.Max]int
	EventsPerSec  float64
	Lost, Resyncs uint64
	Loss          tracer.Loss // Lost by cause
	Hooks         []string
	CloseWait     closewait.Report
	Listeners     []Listener
}

// Listener is one listening socket and its accept queue.
type Listener struct {
	Netns uint32
	Local netip.AddrPort
	// Holders are the processes holding it (a pre-fork server's master
	// and workers), when a /proc scan found them; PID and Comm stand for
	// them (the first) or, without a scan, for the listener's owner.
	Holders []tracer.Holder
	PID     uint32 // 0: owner unknown
	Comm    string
	// Container is the listener's container, if InContainer: the one its
	// socket was created in, else its owner's.
	Container     container.Container
	InContainer   bool
	QueueLen      uint32 // connections waiting for accept()
	Backlog       uint32 // the queue holds Backlog+1 at most
	AcceptsPerSec float64
}

// Sampler builds Frames; it remembers the previous frame's counters.
type Sampler struct {
	// MinAge leaves CLOSE_WAIT sockets younger than this out of the
	// CLOSE_WAIT picture: an HTTP/1.0 client's socket sits there for the
	// moment between the server's FIN and its own close(), which is no
	// leak. 0 counts every one (top shows what is there).
	MinAge    time.Duration
	watch     *closewait.Watch
	prevAt    time.Time
	prevState [tcpstate.Max]int
	prevEvent uint64
	accepts   map[listenerKey]uint64
}

type listenerKey struct {
	netns uint32
	local netip.AddrPort
}

// NewSampler returns a Sampler whose CLOSE_WAIT growth looks back over
// window, its rows standing for what by says.
func NewSampler(window time.Duration, by closewait.Group) *Sampler {
	w := closewait.NewWatch(window)
	w.By = by
	return &Sampler{watch: w, accepts: map[listenerKey]uint64{}}
}

// Input is what one frame is made of, gathered by the caller: the table
// (read under the Tracker's lock), the Tracker's counters, and the
// listeners' queues from a sock_diag dump of LISTEN sockets.
type Input struct {
	At        time.Time
	Table     *live.Table
	Stats     live.Stats
	Hooks     []string
	Listening []snapshot.Socket
	// Holders, if not nil, names the listeners' holders.
	Holders *holders.Registry
	// Keep, if set, limits CLOSE_WAIT sockets and listeners to those it
	// accepts (filter.Filter.Match). owners are the socket's owner, or a
	// listener's holders (any may pass), none when unknown; a listener's
	// remote is the zero AddrPort.
	Keep func(netns uint32, local, remote netip.AddrPort, owners ...tracer.Holder) bool
	// Containers, if not nil, attributes sockets to containers; KeepContainer,
	// if set, limits them as Keep does (filter.Filter.Container).
	Containers    *container.Attributor
	KeepContainer func(c container.Container, ok bool) bool
}

// containerOf is a socket's container (see Attributor.OfSocket), and
// whether Input keeps it.
func (in *Input) containerOf(sockCgroup, ownerCgroup uint64) (c container.Container, ok, keep bool) {
	c, ok = in.Containers.OfSocket(sockCgroup, ownerCgroup)
	return c, ok, in.KeepContainer == nil || in.KeepContainer(c, ok)
}

// Sample makes the frame for in.
func (s *Sampler) Sample(in Input) Frame {
	f := Frame{At: in.At, Hooks: in.Hooks, Lost: in.Stats.Lost, Loss: in.Stats.Loss, Resyncs: in.Stats.Resyncs}
	f.States = in.Table.Counts()
	if !s.prevAt.IsZero() {
		f.Interval = in.At.Sub(s.prevAt)
		for st := range f.States {
			f.Delta[st] = f.States[st] - s.prevState[st]
		}
		if secs := f.Interval.Seconds(); secs > 0 {
			f.EventsPerSec = float64(in.Stats.Events-s.prevEvent) / secs
		}
	}

	var cw []closewait.Conn
	owners := map[listenerKey]*live.Conn{}
	accepts := map[listenerKey]uint64{}
	in.Table.Each(func(c *live.Conn) bool {
		switch {
		case c.State == tcpstate.CloseWait:
			pid, comm := ownerOf(c)
			ctr, inCtr, keep := in.containerOf(c.SockCgroupID, c.OwnerCgroup())
			if keep && (in.Keep == nil || in.Keep(c.Netns, c.Local, c.Remote, keepOwners(pid, comm)...)) {
				cc := closewait.Conn{PID: pid, Comm: comm, Local: c.Local, Remote: c.Remote, Since: c.Since, AtLeast: c.AtLeast,
					Container: ctr, InContainer: inCtr}
				// an older socket's age is a lower bound: it counts
				// once that bound reaches MinAge
				if age, _ := cc.Age(in.At); age >= s.MinAge {
					cw = append(cw, cc)
				}
			}
		case c.Role == live.RoleListener:
			k := listenerKey{c.Netns, c.Local}
			cp := *c
			owners[k] = &cp
			accepts[k] = c.Accepts
		}
		return true
	})
	f.CloseWait = s.watch.Observe(in.At, cw)
	f.Listeners = s.listeners(in, owners, accepts, f.Interval)

	s.prevAt, s.prevState, s.prevEvent = in.At, f.States, in.Stats.Events
	s.accepts = accepts
	return f
}

// keepOwners is one owner for Keep, none when unknown (pid 0).
func keepOwners(pid uint32, comm string) []tracer.Holder {
	if pid == 0 {
		return nil
	}
	return []tracer.Holder{{PID: pid, Comm: comm}}
}

func ownerOf(c *live.Conn) (uint32, string) {
	if !c.OwnerKnown {
		return 0, ""
	}
	return c.PID, c.Comm
}

// ListenersOf is the listeners of in.Listening, their holders and
// containers, without a table (serve, which keeps none): owners come from
// in.Holders alone, and no accept rate is known.
func (s *Sampler) ListenersOf(in Input) []Listener { return s.listeners(in, nil, nil, 0) }

// listeners joins the dumped LISTEN sockets (their queues) with the
// table's listeners (their owners and accept counts).
func (s *Sampler) listeners(in Input, owners map[listenerKey]*live.Conn, accepts map[listenerKey]uint64, interval time.Duration) []Listener {
	var out []Listener
	for i := range in.Listening {
		sk := &in.Listening[i]
		local := netip.AddrPortFrom(sk.Local.Addr().Unmap(), sk.Local.Port())
		k := listenerKey{sk.Netns, local}
		l := Listener{Netns: sk.Netns, Local: local, QueueLen: sk.RecvQ, Backlog: sk.SendQ}
		var owner uint64
		if c := owners[k]; c != nil {
			l.PID, l.Comm = ownerOf(c)
			owner = c.OwnerCgroup()
		}
		var keep bool
		if l.Container, l.InContainer, keep = in.containerOf(sk.CgroupID, owner); !keep {
			continue
		}
		if in.Holders != nil {
			if set := in.Holders.Listener(holders.Key{Netns: sk.Netns, Inode: sk.Inode}); set != nil && len(set.Holders) > 0 {
				l.Holders = set.Holders
				l.PID, l.Comm = set.Holders[0].PID, set.Holders[0].Comm
			}
		}
		if l.PID == 0 && len(sk.Processes) > 0 {
			l.PID, l.Comm = uint32(sk.Processes[0].PID), sk.Processes[0].Comm
		}
		if in.Keep != nil {
			hs := l.Holders
			if len(hs) == 0 {
				hs = keepOwners(l.PID, l.Comm)
			}
			if !in.Keep(l.Netns, l.Local, netip.AddrPort{}, hs...) {
				continue
			}
		}
		if prev, ok := s.accepts[k]; ok && interval > 0 && accepts[k] >= prev {
			l.AcceptsPerSec = float64(accepts[k]-prev) / interval.Seconds()
		}
		out = append(out, l)
	}
	// Fullest queue first: a listener near its backlog is the one dropping.
	slices.SortFunc(out, func(a, b Listener) int {
		return cmp.Or(cmp.Compare(backlog.QueueFill(b.QueueLen, b.Backlog), backlog.QueueFill(a.QueueLen, a.Backlog)), cmp.Compare(b.AcceptsPerSec, a.AcceptsPerSec),
			cmp.Compare(a.Local.Port(), b.Local.Port()), a.Local.Addr().Compare(b.Local.Addr()))
	})
	return out
}
