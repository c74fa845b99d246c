package tracer

// aggregate.go: what the programs count in the kernel under
// Options.Aggregate (serve), read when asked (a scrape): connections per
// network namespace and each listener's accepts. See bpf/aggregate.bpf.h;
// the sockets in CLOSE_WAIT are the Census's.

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
)

// ConnTotals count one network namespace's connections since the tracer
// started: counters, as a monitoring system wants them.
type ConnTotals struct {
	// OpenedClient counts connect()s (CLOSE -> SYN_SENT), OpenedServer
	// a listener's children (LISTEN -> SYN_RECV).
	OpenedClient, OpenedServer uint64
	// Closed counts connections that reached CLOSE, by who started the
	// end: local (we sent the first FIN), remote (the peer did), reset
	// (no FIN exchange: RST, a refused or timed-out connect).
	ClosedLocal, ClosedRemote, ClosedReset uint64
	// ConnectFailures counts SYN_SENT -> CLOSE (also in ClosedReset).
	ConnectFailures uint64
}

// ConnTotals reads the counters of every namespace a counted transition
// happened in, summed over CPUs. Without Options.Aggregate it is empty.
func (t *Tracer) ConnTotals() (map[uint32]ConnTotals, error) {
	out := map[uint32]ConnTotals{}
	var netns uint32
	var perCPU []socklifeConnTotals
	it := t.maps.NetnsTotals.Iterate()
	for it.Next(&netns, &perCPU) {
		var c ConnTotals
		for _, v := range perCPU {
			c.OpenedClient += v.OpenedClient
			c.OpenedServer += v.OpenedServer
			c.ClosedLocal += v.ClosedLocal
			c.ClosedRemote += v.ClosedRemote
			c.ClosedReset += v.ClosedReset
			c.ConnectFailures += v.ConnectFailures
		}
		out[netns] = c
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading the connection counters: %w", err)
	}
	return out, nil
}

// AcceptWaitBuckets are the upper bounds of the accept-wait histogram:
// 100µs to 10s, about three a decade, from a loopback accept (tens of µs)
// to an acceptor stuck for seconds. The programs count into them under
// Aggregate (ListenerAccepts), and the backlog accounting counts accept
// events into the same ones; the loader gives them to the programs, so
// they live here alone.
var AcceptWaitBuckets = [len(socklifeAcceptTotals{}.Waits) - 1]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// acceptWaitBoundsNs is AcceptWaitBuckets as the programs read them.
func acceptWaitBoundsNs() [len(AcceptWaitBuckets)]uint64 {
	var ns [len(AcceptWaitBuckets)]uint64
	for i, b := range AcceptWaitBuckets {
		ns[i] = uint64(b)
	}
	return ns
}

// AcceptKey names the listener the programs counted accepts against: its
// socket inode, or (Inode 0) only its namespace and port, when the accept
// hook did not see the listener (an accept() that began before the tracer,
// on the syscall tracepoint rung).
type AcceptKey struct {
	Netns uint32
	Port  uint16
	Inode uint64
}

// ListenerAccepts is what the programs counted of one listener's accepts
// since the tracer started.
type ListenerAccepts struct {
	Accepts uint64
	// Waits counts the accepts whose wait in the queue is known (the
	// child's handshake was seen) by AcceptWaitBuckets: Waits[i] those in
	// (AcceptWaitBuckets[i-1], AcceptWaitBuckets[i]], the last those above
	// every bound. Not cumulative.
	Waits   [len(AcceptWaitBuckets) + 1]uint64
	WaitSum time.Duration
	// Last is the latest accept and Acceptor the process (tgid) that made
	// it; of two accepts at the same moment on two CPUs, either one's.
	Last     time.Time
	Acceptor uint32
}

// ListenerAccepts reads the accept counts of every listener an accept was
// counted on. Empty without Options.Aggregate or without an accept hook.
func (t *Tracer) ListenerAccepts() (map[AcceptKey]ListenerAccepts, error) {
	out := map[AcceptKey]ListenerAccepts{}
	var key socklifeAcceptKey
	var v socklifeAcceptTotals
	it := t.maps.ListenerAccepts.Iterate()
	for it.Next(&key, &v) {
		la := ListenerAccepts{Accepts: v.Accepts, Waits: v.Waits, WaitSum: time.Duration(v.WaitSumNs), Acceptor: v.Acceptor}
		if v.Accepts != 0 {
			la.Last = t.clock.wall(v.LastNs)
		}
		out[AcceptKey{Netns: key.Netns, Port: key.Port, Inode: key.Ino}] = la
	}
	// as CloseWaits: what was read is true of each listener it names
	if err := it.Err(); err != nil && !errors.Is(err, ebpf.ErrIterationAborted) {
		return nil, fmt.Errorf("reading the listeners' accept counts: %w", err)
	}
	return out, nil
}
