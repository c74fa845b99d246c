package tracer

// aggregate.go: what the programs count in the kernel under
// Options.Aggregate (serve), read when asked (a scrape): connections per
// network namespace and the sockets in CLOSE_WAIT. See bpf/aggregate.bpf.h.

import (
	"errors"
	"fmt"
	"net/netip"
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

// CloseWait is a socket the programs saw enter CLOSE_WAIT, still there.
type CloseWait struct {
	Sock          uint64 // struct sock *
	Netns         uint32
	Family        uint8
	Local, Remote netip.AddrPort
	// Owner is the socket's owner when it entered CLOSE_WAIT, as an
	// event would have named it (OwnerSource).
	Owner        Task
	OwnerSource  OwnerSource
	Since        time.Time
	SockCgroupID uint64
}

// CloseWaits lists the sockets in CLOSE_WAIT the programs saw enter it
// (sockets already there when the tracer started are not in it). Without
// Options.Aggregate it is empty.
func (t *Tracer) CloseWaits() ([]CloseWait, error) {
	var out []CloseWait
	var sock uint64
	var w socklifeCloseWait
	comms := newCommCache()
	seen := map[uint64]bool{}
	it := t.maps.CloseWaits.Iterate()
	for it.Next(&sock, &w) {
		// a walk that lost its place restarts from the first key
		if seen[sock] {
			continue
		}
		seen[sock] = true
		cw := CloseWait{
			Sock: sock, Netns: w.Netns, Family: uint8(w.Family),
			Local: addrPort(w.Saddr, w.Sport), Remote: addrPort(w.Daddr, w.Dport),
			OwnerSource: ownerSource(w.OwnerFlag), Since: t.clock.wall(w.SinceNs), SockCgroupID: w.SockCgroup,
		}
		if cw.OwnerSource != OwnerUnknown {
			cw.Owner = Task{PID: w.Owner.Tgid, Comm: comms.name(w.Owner.Comm), CgroupID: w.Owner.CgroupId}
		}
		out = append(out, cw)
	}
	// A hash changing under the walk can restart it past its retries:
	// what was read is still true of each socket it names.
	if err := it.Err(); err != nil && !errors.Is(err, ebpf.ErrIterationAborted) {
		return nil, fmt.Errorf("reading the CLOSE_WAIT sockets: %w", err)
	}
	return out, nil
}
