package tracer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/socklife/socklife/internal/tcpstate"
)

// Census takes stock of a network namespace's TCP sockets in the kernel:
// a BPF iterator over the TCP hash (iter/tcp, Linux 5.9+) writes one byte
// per socket, its state as sock_diag reports it, and for each socket in
// CLOSE_WAIT its addresses with what the tracer's programs know of it
// (bpf/states.bpf.h). A sock_diag dump builds and copies a message for
// every socket instead; at 100,000 sockets the iterator takes 38 ms, the
// dump 90.
type Census struct {
	prog  *ebpf.Program
	iter  *link.Iter
	clock clock
}

// Tally is what a Census found in one namespace.
type Tally struct {
	States [tcpstate.Max]int
	// CloseWait are the sockets in CLOSE_WAIT.
	CloseWait []CloseWait
}

// CloseWait is a socket in CLOSE_WAIT, with its owner and since when as
// the tracer's programs saw them: the owner is the one an event would
// have named (OwnerSource), and Since is zero when they did not see it
// enter CLOSE_WAIT (it did before the tracer started).
type CloseWait struct {
	Netns  uint32
	Family uint8
	// IPv4 over IPv6 unmapped, as an event gives them
	Local, Remote netip.AddrPort
	Owner         Task
	OwnerSource   OwnerSource
	Since         time.Time
	SockCgroupID  uint64
}

// NewCensus loads and attaches the iterator, which reads the tracer's
// map of sockets for the owners. An error means this kernel has none for
// TCP (before 5.9) or refuses it: count from a dump.
func (t *Tracer) NewCensus() (*Census, error) {
	spec, _, err := loadSpecs()
	if err != nil {
		return nil, err
	}
	var objs struct {
		Prog *ebpf.Program `ebpf:"tcp_states"`
	}
	// the tracer's map: a new one would know no owner, and cost its
	// preallocated entries. Its spec sized as the tracer sized it
	// (Options.MaxSockets), or the replacement is refused.
	spec.Maps["socks"].MaxEntries = t.maps.Socks.MaxEntries()
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"socks": t.maps.Socks}}
	if err := spec.LoadAndAssign(&objs, opts); err != nil {
		return nil, fmt.Errorf("loading the TCP socket iterator: %w", err)
	}
	it, err := link.AttachIter(link.IterOptions{Program: objs.Prog})
	if err != nil {
		objs.Prog.Close()
		return nil, fmt.Errorf("attaching the TCP socket iterator: %w", err)
	}
	return &Census{prog: objs.Prog, iter: it, clock: t.clock}, nil
}

// Take counts the TCP sockets of the calling thread's network namespace
// (the iterator lists the namespace it is opened in): run it on a thread
// moved into the namespace to count (snapshot.EachNetns). A socket in a
// state sock_diag would not name is left out, as exporter.CountState
// leaves it.
func (c *Census) Take() (Tally, error) {
	var t Tally
	f, err := c.iter.Open()
	if err != nil {
		return t, fmt.Errorf("opening the TCP socket iterator: %w", err)
	}
	defer f.Close()
	err = c.readTally(bufio.NewReaderSize(f, 64<<10), &t)
	if err != nil {
		return t, fmt.Errorf("reading the TCP socket iterator: %w", err)
	}
	return t, nil
}

// readTally reads the iterator's output: a state byte a socket, the
// socket's socklifeCloseWait after each CLOSE_WAIT.
func (c *Census) readTally(r *bufio.Reader, t *Tally) error {
	comms := newCommCache()
	for {
		b, err := r.ReadByte()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s := tcpstate.State(b)
		if s.Known() {
			t.States[s]++
		}
		if s != tcpstate.CloseWait {
			continue
		}
		var w socklifeCloseWait
		if err := binary.Read(r, binary.NativeEndian, &w); err != nil {
			return fmt.Errorf("a CLOSE_WAIT socket's record: %w", err)
		}
		cw := CloseWait{
			Netns: w.Netns, Family: uint8(w.Family),
			Local: addrPort(w.Saddr, w.Sport), Remote: addrPort(w.Daddr, w.Dport),
			OwnerSource: ownerSource(w.OwnerFlag), SockCgroupID: w.SockCgroup,
		}
		if w.SinceNs != 0 {
			cw.Since = c.clock.wall(w.SinceNs)
		}
		if cw.OwnerSource != OwnerUnknown {
			cw.Owner = Task{PID: w.Owner.Tgid, Comm: comms.name(w.Owner.Comm), CgroupID: w.Owner.CgroupId}
		}
		t.CloseWait = append(t.CloseWait, cw)
	}
}

// Close detaches and unloads the iterator.
func (c *Census) Close() error {
	return errors.Join(c.iter.Close(), c.prog.Close())
}
