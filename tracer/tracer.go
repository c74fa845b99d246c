// Package tracer loads socklife's BPF programs, attaches each feature with
// the best hook the kernel allows (HookStatus says which, and why not the
// better ones), and decodes the ring buffer into Events: TCP state changes
// with the owning process even in softirq, and accepts.
//
// A connection as `socklife trace` prints it (internal/render):
//
//	TIME            PID     COMM            NETNS      LADDR:LPORT           RADDR:RPORT           OLD            NEW         MS
//	00:09:15.416908 26946   tracer.test     4026531833 127.0.0.1:0           127.0.0.1:43495       CLOSE       -> SYN_SENT    -
//	00:09:15.416955 26946   tracer.test     4026531833 127.0.0.1:48630       127.0.0.1:43495       SYN_SENT    -> ESTABLISHED 0.047
//	00:09:15.416963 26946   tracer.test     4026531833 127.0.0.1:43495       127.0.0.1:48630       LISTEN      -> SYN_RECV    -
//	00:09:15.416970 26946   tracer.test     4026531833 127.0.0.1:43495       127.0.0.1:48630       SYN_RECV    -> ESTABLISHED 0.007
//	00:09:15.417000 26946   tracer.test     4026531833 127.0.0.1:43495       127.0.0.1:48630       ACCEPT      -> ESTABLISHED 0.030
//	00:09:15.417011 26946   tracer.test     4026531833 127.0.0.1:48630       127.0.0.1:43495       ESTABLISHED -> FIN_WAIT1   0.056
//
// Use: New, then Read (or Next) on one goroutine; Loss and Close at the end.
package tracer

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
)

// Options choose what to trace. Filters run in the kernel: an event they
// drop costs no ring-buffer space. Zero values mean "no filter".
type Options struct {
	// PID keeps sockets owned by this process, including the transitions
	// that run in softirq on its behalf.
	PID uint32
	// Ports match either side, SPorts the local and DPorts the remote
	// port: any of a set's ports (MaxFilterPorts at most; none: no filter).
	Ports, SPorts, DPorts []uint16
	Netns                 uint32 // network namespace inode
	// IPv4Only counts a dual-stack socket talking IPv4 (v4-mapped) as IPv4;
	// a [::] listener, and its child's LISTEN->SYN_RECV, which still carries
	// the listener's tuple, count as IPv6.
	IPv4Only, IPv6Only bool
	// States keeps transitions whose old or new state is in the mask.
	States tcpstate.Mask
	// ByCgroup keeps only sockets created in one of Cgroups (cgroup v2
	// ids) or owned by a process in one: containers' (--container,
	// --pod). AddCgroups adds a container's cgroups as it appears.
	ByCgroup bool
	Cgroups  []uint64
	// DisableHooks turns mechanisms off (HookNames) to force a lower rung.
	DisableHooks []string
	// Backlog turns on accept-queue accounting: enqueue events carry the
	// listener's queues (Event.Queue) and SYN-ACK retransmits are traced.
	Backlog bool
	// Aggregate counts in the kernel what an always-on exporter reads
	// (ConnTotals, CloseWaits, ListenerAccepts) and sends through the ring
	// only listener starts and ends among state changes, beside SYN-ACK
	// retransmits: no record per transition or accept.
	Aggregate bool
	// AcceptHooks limits the accept hook to what an always-on agent can
	// pay for: AcceptPerCall leaves out the syscall tracepoint rung, which
	// sends every syscall of every task through the slow path once
	// attached; AcceptOff attaches none. The zero value tries every rung.
	AcceptHooks AcceptHooks

	// RingSize is the ring buffer's size in bytes, a power of two; 0 is
	// the BPF object's default (8 MiB, bpf/common.bpf.h).
	RingSize uint32
	// MaxSockets bounds the per-socket owner map and the seeded owners of
	// older sockets (SeedOwners); 0 is the BPF object's default (262144).
	MaxSockets uint32
	// FlushInterval bounds how long an event waits in the ring when the
	// kernel skips the wake-up; 0 is 8ms. Above 10ms the Go runtime takes
	// the reader's blocked thread's P away at every wait, and its monitor
	// thread then wakes at 20µs intervals: a cost, not a saving.
	FlushInterval time.Duration
	// Logger gets one warning per feature that could not attach, and the
	// reasons of every rung that did not (at debug level). nil: slog.Default().
	Logger *slog.Logger

	// stateHook, when set, is the only rung tried for state changes: tests
	// force each state hook without losing a tracepoint accept hook, as
	// DisableHooks's mechanism names would.
	stateHook Hook
	// syscallEntry makes the syscall rung of accept hook the entry too, as
	// it must before 5.15, so that tests cover that path on any kernel.
	syscallEntry bool
}

const defaultFlush = 8 * time.Millisecond

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("tracer closed")

// Tracer is attached programs and the ring buffer they fill. Next and Read
// are for one goroutine; Loss, Lost, Hooks and Close may be called from any.
type Tracer struct {
	maps socklifeMaps
	// data holds what the maps' collection keeps after maps is assigned
	// from it: the .rodata of the filter constants.
	data   *ebpf.Collection
	progs  []*ebpf.Collection
	links  []link.Link
	reader *ringbuf.Reader
	hooks  []HookStatus

	flush   time.Duration
	clock   clock
	rec     ringbuf.Record
	wire    socklifeEvent
	comms   commCache
	reads   uint
	badRecs uint64
	// recursionKnown: the kernel counts its programs' recursion misses.
	recursionKnown bool
	// tap, when set (by tests), sees every raw record before decoding.
	tap func([]byte)
	// filterPID is Options.PID: seeds say whether it holds a listener.
	filterPID uint32
}

// New loads the programs, attaches every feature it can and starts the
// ring-buffer reader. It fails when state changes cannot be traced at all;
// a feature that cannot attach is logged and reported by Hooks.
func New(opts Options) (*Tracer, error) {
	if err := checkOptions(opts); err != nil {
		return nil, err
	}
	if err := Preflight(); err != nil {
		return nil, err
	}
	spec, specs, err := loadSpecs()
	if err != nil {
		return nil, err
	}
	if err := configure(specs, opts); err != nil {
		return nil, err
	}
	t := &Tracer{flush: opts.FlushInterval, clock: newClock(), comms: newCommCache(), filterPID: opts.PID}
	if t.flush <= 0 {
		t.flush = defaultFlush
	}
	if err := t.load(spec, opts); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// MaxFilterPorts is how many ports one of Options' port sets may hold:
// MAX_FILTER_PORTS of bpf/common.bpf.h (setting a filter_*ports of another
// size fails in configure, so every test that loads the object checks it).
const MaxFilterPorts = 8

// portSet is a port filter as the BPF side takes it: 0 after the last.
func portSet(ports []uint16) [MaxFilterPorts]uint16 {
	var set [MaxFilterPorts]uint16
	copy(set[:], ports)
	return set
}

func checkOptions(opts Options) error {
	if opts.IPv4Only && opts.IPv6Only {
		return errors.New("IPv4Only and IPv6Only exclude each other")
	}
	for _, set := range [][]uint16{opts.Ports, opts.SPorts, opts.DPorts} {
		if len(set) > MaxFilterPorts {
			return fmt.Errorf("%d ports in one filter: at most %d", len(set), MaxFilterPorts)
		}
		if slices.Contains(set, 0) {
			return errors.New("port 0 in a filter: it matches nothing")
		}
	}
	if err := CheckRingSize(opts.RingSize); err != nil {
		return err
	}
	return CheckHookNames(opts.DisableHooks)
}

// loadSpecs lifts the memlock limit (kernels before 5.11 count BPF memory
// against it) and reads the BPF object, and its programs, maps and
// variables by their generated names.
func loadSpecs() (*ebpf.CollectionSpec, *socklifeSpecs, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, nil, fmt.Errorf("removing the memlock rlimit: %w", err)
	}
	spec, err := loadSocklife()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the BPF object: %w", err)
	}
	var specs socklifeSpecs
	if err := spec.Assign(&specs); err != nil {
		return nil, nil, fmt.Errorf("reading the BPF object: %w", err)
	}
	return spec, &specs, nil
}

// CheckRingSize says whether n is a valid Options.RingSize.
func CheckRingSize(n uint32) error {
	if n != 0 && (n&(n-1) != 0 || n < 4096) {
		return fmt.Errorf("ring size %d is not a power of two of at least 4096", n)
	}
	return nil
}

// configure writes the filters into the object's constants and sizes its
// maps; the object's own sizes are the defaults.
func configure(specs *socklifeSpecs, opts Options) error {
	var family uint8
	switch {
	case opts.IPv4Only:
		family = unix.AF_INET
	case opts.IPv6Only:
		family = unix.AF_INET6
	}
	if opts.RingSize != 0 {
		specs.Events.MaxEntries = opts.RingSize
	}
	if opts.MaxSockets != 0 {
		specs.Socks.MaxEntries = opts.MaxSockets
		specs.Seeded.MaxEntries = opts.MaxSockets
	}
	consts := []struct {
		v     *ebpf.VariableSpec
		value any
	}{
		{specs.FilterPid, opts.PID},
		{specs.FilterNetns, opts.Netns},
		{specs.FilterPorts, portSet(opts.Ports)},
		{specs.FilterSports, portSet(opts.SPorts)},
		{specs.FilterDports, portSet(opts.DPorts)},
		{specs.FilterFamily, family},
		{specs.FilterStates, uint32(opts.States)},
		{specs.FilterByCgroup, boolByte(opts.ByCgroup)},
		{specs.WantQueue, boolByte(opts.Backlog)},
		{specs.Aggregate, boolByte(opts.Aggregate)},
		{specs.AcceptWaitBounds, acceptWaitBoundsNs()},
		// Wake the reader early enough that a burst cannot fill the ring
		// between two timer drains.
		{specs.WakeupBytes, uint64(specs.Events.MaxEntries / 32)},
	}
	for _, c := range consts {
		if err := c.v.Set(c.value); err != nil {
			return fmt.Errorf("setting %s: %w", c.v.Name, err)
		}
	}
	return nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// load creates the maps once, then climbs each feature's ladder loading one
// rung's programs at a time against those maps.
func (t *Tracer) load(spec *ebpf.CollectionSpec, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	mapsOnly := &ebpf.CollectionSpec{Maps: spec.Maps, Variables: spec.Variables, Types: spec.Types, ByteOrder: spec.ByteOrder}
	cache := btf.NewCache()
	t.recursionKnown = countsRecursion(cache)
	var err error
	if t.data, err = ebpf.NewCollectionWithOptions(mapsOnly, ebpf.CollectionOptions{Cache: cache}); err != nil {
		return fmt.Errorf("creating BPF maps: %w", err)
	}
	// Every rung's programs share these maps, .rodata included.
	shared := maps.Clone(t.data.Maps)
	if err := t.data.Assign(&t.maps); err != nil {
		return fmt.Errorf("creating BPF maps: %w", err)
	}
	// before any program runs: an event of these cgroups is never lost
	if err := t.AddCgroups(opts.Cgroups...); err != nil {
		return err
	}
	// Before any attach: cilium/ebpf caches where tracefs is.
	mounted, tracefsErr := ensureTracefs()
	if mounted {
		// A change to the host's mounts deserves a line, even at 3 a.m.
		log.Warn("mounted tracefs at " + tracefsDir + ": tracepoints need it")
	}
	l := loader{spec: spec, maps: shared, cache: cache, tracefsErr: tracefsErr, disabled: opts.DisableHooks, log: log, syscallEntry: opts.syscallEntry}
	// The reader starts before the programs attach so the first events find it.
	if t.reader, err = ringbuf.NewReader(t.maps.Events); err != nil {
		return fmt.Errorf("opening the ring buffer: %w", err)
	}
	t.reader.SetDeadline(time.Now().Add(t.flush))
	type feature struct {
		name   Feature
		ladder []rung
	}
	features := []feature{{FeatureState, onlyRung(stateLadder, opts.stateHook)}, {FeatureAccept, opts.AcceptHooks.ladder()}}
	if opts.Backlog {
		features = append(features, feature{FeatureSynack, synackLadder})
	}
	for _, f := range features {
		st, colls, links := l.climb(f.name, f.ladder)
		t.hooks = append(t.hooks, st)
		t.progs = append(t.progs, colls...)
		t.links = append(t.links, links...)
		if !st.Attached() && f.name == FeatureState {
			return fmt.Errorf("no hook for TCP state changes: %s", st)
		}
		if !st.Attached() && !st.LeftOut() { // the caller chose what it left out
			log.Warn(fmt.Sprintf("%s events off: %s", f.name, st))
		}
	}
	return nil
}

// onlyRung keeps the rung of hook h (all of them when h is 0).
func onlyRung(ladder []rung, h Hook) []rung {
	if h == 0 {
		return ladder
	}
	for _, r := range ladder {
		if r.hook == h {
			return []rung{r}
		}
	}
	return nil
}

// Hooks says, per feature, which hook is in use or why none is.
func (t *Tracer) Hooks() []HookStatus { return append([]HookStatus(nil), t.hooks...) }

// Lost counts every event lost so far, whatever the cause (Loss says which).
func (t *Tracer) Lost() uint64 { return t.Loss().Total() }

// Close detaches the programs and stops the reader; a blocked Next returns ErrClosed.
func (t *Tracer) Close() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	if t.reader != nil {
		errs = append(errs, t.reader.Close())
	}
	for _, c := range t.progs {
		c.Close()
	}
	t.progs = nil
	t.maps.Close()
	if t.data != nil {
		t.data.Close()
	}
	return errors.Join(errs...)
}

// AddCgroups adds cgroup v2 ids to those Options.ByCgroup keeps.
func (t *Tracer) AddCgroups(ids ...uint64) error {
	var one uint8 = 1
	for _, id := range ids {
		if err := t.maps.FilterCgroups.Update(id, one, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("adding cgroup %d to the filter: %w", id, err)
		}
	}
	return nil
}
