// Package backlog accounts for listeners' accept queues: how deep they get
// against their backlog, how long connections wait in them before accept(),
// how many connections they drop, and when their owner stops accepting.
//
// It feeds on tracer events (enqueue at the child's SYN_RECV->ESTABLISHED,
// dequeue at accept, SYN-ACK retransmits; tracer.Options.Backlog), sock_diag
// dumps of listeners (queue length, backlog and sk_drops of listeners that
// predate the tracer or that no event touched) and the netns counters of
// /proc/net/netstat. An interval of a listener (backlog 4) whose owner has
// stopped accepting, as `socklife backlog --stall 500ms` prints it:
//
//	23:55:28  1 listeners  netns 4026531833: ListenOverflows +3 ListenDrops +3
//	23:55:28.768 stall begin 127.0.0.1:32851 pid 19713 (python3): queue not empty, no accept() for 1.007s
//	LISTEN           NETNS       PID    COMM     QUEUE  PEAK  BACKLOG  FULL%  SYNQ  ACCEPTS  P50ms  P90ms  P99ms  MAXms  DROPS  SYNACK  STALLED
//	127.0.0.1:32851  4026531833  19713  python3      5     5        4  100.0     0        0      -      -      -      -      3       0  1.007s
//
// Accounting is the pure part (events and samples in, Reports out); Run
// drives it from a tracer, sock_diag and a ticker.
package backlog

import (
	"net/netip"
	"time"

	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/holders"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// Key names one listening socket: its netns and socket inode, as
// sock_diag reports them and the BPF programs read them.
type Key = holders.Key

// Config chooses what Run reports and how often.
type Config struct {
	// Interval between reports; 0 is 1s.
	Interval time.Duration
	// Stall is how long a listener may hold a non-empty queue without an
	// accept() before it is flagged; 0 is 1s.
	Stall time.Duration
	// Keep, if set, keeps the listeners it accepts (filter.Filter.Match):
	// owners are the listener's holders (any may pass: a pre-fork
	// server's master or a worker), or who accepted or listened when no
	// scan named them, none when unknown; remote is the zero AddrPort.
	Keep func(netns uint32, local, remote netip.AddrPort, owners ...tracer.Holder) bool
	// AllNetns dumps the listeners of every network namespace each
	// interval, not only ours. Events cover every namespace either way;
	// the dumps add drops of listeners no event touched, and listeners
	// that predate the tracer. Finding the namespaces walks /proc.
	AllNetns bool
	// Containers, if not nil, attributes listeners to containers;
	// KeepContainer, if set, limits them as Keep does
	// (filter.Filter.Container).
	Containers    *container.Attributor
	KeepContainer func(c container.Container, ok bool) bool
	// ListenerAccepts, if set, reads the kernel's per-listener accept
	// counts (tracer.Tracer.ListenerAccepts, under Options.Aggregate) at
	// every poll: accepts then come from there, not as events.
	ListenerAccepts func() (map[tracer.AcceptKey]tracer.ListenerAccepts, error)
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Stall <= 0 {
		c.Stall = time.Second
	}
	return c
}

// Waits summarises accept waits: the time from a child entering the accept
// queue (its handshake completing) to accept() returning it. Percentiles
// are nearest-rank over the exact waits up to 4096 of them, beyond that over
// a uniform sample of 4096 (maxWaitSamples); Count and Max are always exact.
type Waits struct {
	Count              int
	P50, P90, P99, Max time.Duration
}

// ListenerReport is one listener over one interval (and since start where
// the field says Total).
type ListenerReport struct {
	Key
	Local netip.AddrPort
	// Holders are the processes holding the listener, those seen calling
	// accept() on it first; Acceptors says how many were seen accepting.
	// A pre-fork server's master holds its listener and never accepts.
	Holders   []tracer.Holder
	Acceptors int
	// PID and Comm stand for them: the first holder, 0 and "" when none
	// is known.
	PID  uint32
	Comm string
	// Container is the listener's, if InContainer: the one its socket was
	// created in, else its owner's.
	Container   container.Container
	InContainer bool

	Backlog uint32 // the listen() backlog; the queue is full above it
	Queue   uint32 // accept-queue length at the end of the interval
	Peak    uint32 // deepest the queue got in the interval
	// FullFraction is the share of the interval the queue was full
	// (length > backlog), 0..1.
	FullFraction float64
	// SynQueue and SynPeak: request (half-open) queue length at the last
	// event and its peak over the interval's events (0: none came); only
	// BPF events see it. SynQueueFull: the peak
	// went past the backlog (the kernel holds backlog+1 half-open
	// requests; seen here: 9 SYN-RECV at backlog 8), after which it
	// answers SYNs with cookies or drops them (a SYN flood, or a burst of clients whose
	// final ACKs do not arrive).
	SynQueue, SynPeak uint32
	SynQueueFull      bool

	Enqueues, Accepts uint64
	Wait              Waits // this interval's accepted connections
	WaitTotal         Waits // every accepted connection since start
	// AcceptsTotal counts accept()s since start; WaitHistogram the waits
	// of those whose wait is known, since start (what a Prometheus
	// histogram exports: percentiles cannot be summed across scrapes).
	AcceptsTotal  uint64
	WaitHistogram WaitHistogram

	// Drops is the listener's sk_drops growth over the interval (SYNs and
	// final ACKs dropped on overflow, and other listen drops); DropsTotal
	// since start (since creation for listeners born after start).
	Drops, DropsTotal uint64
	// SkDrops is the last reading of sk_drops itself, as ss -tlnm shows
	// it (a counter since the listener was created).
	SkDrops uint32
	// SynackRetrans counts SYN-ACK retransmits, a final ACK dropped or lost.
	SynackRetrans, SynackRetransTotal uint64

	// Stalled: the queue is non-empty and nobody accepted for longer than
	// Config.Stall; StalledFor says how long so far. StalledAtLeast: the
	// queue was already non-empty when socklife first saw the listener
	// and nobody has accepted since, so the stall began earlier than
	// StalledFor says.
	Stalled        bool
	StalledFor     time.Duration
	StalledAtLeast bool
	// StalledTotal is the time spent stalled since start, the current
	// stall included.
	StalledTotal time.Duration
}

// NetnsCounters are /proc/net/netstat's TcpExt listen and SYN-cookie
// counters of one network namespace, as growth over the interval and since
// start.
type NetnsCounters struct {
	Netns           uint32
	Interval, Total Netstat
	// SynFlood: in the interval SYNs found a listener's SYN queue full and
	// were answered with cookies or dropped (Netstat.SynFlood).
	SynFlood bool
}

// StallEvent is a listener starting or stopping to stall.
type StallEvent struct {
	Time  time.Time
	Key   Key
	Local netip.AddrPort
	// Holders names who should have accepted: the holders seen accepting,
	// or every holder when none was (Acceptors 0: socklife has not seen
	// any of them accept, as when they stopped before it started). PID and
	// Comm are the first of them.
	Holders   []tracer.Holder
	Acceptors int
	PID       uint32
	Comm      string
	Begin     bool          // false: accepts resumed or the queue emptied
	For       time.Duration // how long it had stalled (at the end), or the threshold crossed (at the begin)
	// AtLeast: the stall began before socklife saw the listener; For is a
	// lower bound.
	AtLeast bool
}

// Report is one interval.
type Report struct {
	Start, End time.Time
	Listeners  []ListenerReport // worst first
	Stalls     []StallEvent
	Netns      []NetnsCounters
	// Lost counts tracer events lost so far: the accounting of the
	// listeners they touched is short by as many.
	Lost uint64
	Loss tracer.Loss // Lost by cause
	// Listening are the listening sockets the poll dumped, for a caller
	// that shows them another way too (serve's holders of listeners):
	// one dump serves both.
	Listening []snapshot.Socket `json:"-"`
}

// QueueFull is the kernel's sk_acceptq_is_full: an accept queue is full
// once it holds more than its listen() backlog (it holds backlog+1 at
// most). A backlog of 0 is taken as not known, never full.
func QueueFull(queued, backlog uint32) bool { return backlog != 0 && queued > backlog }

// QueueFill ranks accept queues by how full they are: what they hold over
// what they can, backlog+1; 0 when the backlog is not known.
func QueueFill(queued, backlog uint32) float64 {
	if backlog == 0 {
		return 0
	}
	return float64(queued) / float64(backlog+1)
}
