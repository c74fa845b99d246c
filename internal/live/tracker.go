package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/socklife/socklife/internal/holders"
	"github.com/socklife/socklife/internal/runner"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// Options configure a Tracker.
type Options struct {
	// Tracer filters events in the kernel. Keep its filters to what is
	// stable over a socket's life (ports, netns, family, pid): a state
	// filter would leave the table holes.
	Tracer tracer.Options
	// Keep, if set, filters the snapshot's sockets to match Tracer's filters;
	// it sees them with their owners (Processes) found.
	Keep func(*snapshot.Socket) bool
	// OnClose is called, on the reading goroutine with the table locked, for
	// each socket that leaves the table. An error stops the Tracker.
	OnClose func(*Conn) error
	// OnDrained, if set, is called like OnClose whenever the reader has
	// caught up with the ring: the moment to flush buffered render.
	OnDrained func() error
	// OnEvent, if set, sees every event as it is read, before the table
	// (even while a snapshot buffers them), on the reading goroutine:
	// for a second account of the same events (serve's backlog), without
	// a second tracer.
	OnEvent func(*tracer.Event)
	// AfterAttach, a test hook, runs after the programs attach and before
	// the snapshot: what it does to sockets happens in the gap.
	AfterAttach func()
	// Logger gets one warning per resync. nil: slog.Default().
	Logger *slog.Logger
	// ResyncCheck is how often the loss counter is read; 0 is 200ms.
	ResyncCheck time.Duration
}

// Stats count what a Tracker did.
type Stats struct {
	Events uint64 // events applied
	Lost   uint64 // events the kernel dropped (Loss.Total)
	Loss   tracer.Loss
	// Unresynced counts the events lost since the last resync: sockets
	// the table may hold though the kernel has freed them, or lack.
	Unresynced uint64
	Resyncs    uint64
	LastResync time.Time
}

// Tracker keeps a Table up to date from the kernel: it attaches the
// tracer, reads events into a buffer while it takes the snapshot, replays
// them over it, then applies them as they come.
type Tracker struct {
	tr     *tracer.Tracer
	run    *runner.Runner
	opts   Options
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup

	closeOnce sync.Once

	// resyncMu makes one resync at a time (the periodic ones and the
	// last one at stop) and guards seenLost: the loss the last resync
	// covered.
	resyncMu sync.Mutex
	seenLost uint64

	mu        sync.Mutex
	table     *Table
	buffering bool
	buf       []tracer.Event
	stats     Stats
	lossFinal bool // stats hold the loss at the stop
	err       error
}

// Start attaches, snapshots, replays and goes live. The Tracker runs until
// ctx ends (then it applies what the ring still holds and stops: Done is
// closed), OnClose fails, or Close.
func Start(ctx context.Context, opts Options) (*Tracker, error) {
	if opts.ResyncCheck <= 0 {
		opts.ResyncCheck = 200 * time.Millisecond
	}
	tk := &Tracker{opts: opts, log: opts.Logger, done: make(chan struct{}), buffering: true}
	if tk.log == nil {
		tk.log = slog.Default()
	}
	tk.table = NewTable(opts.OnClose)
	if opts.Tracer.Logger == nil {
		opts.Tracer.Logger = tk.log // the tracer's warnings speak as ours do
	}
	tr, err := tracer.New(opts.Tracer)
	if err != nil {
		return nil, err
	}
	tk.tr = tr
	// Reading outlives ctx a little: what the kernel wrote before ctx
	// ended is still applied (drainThenStop).
	inner, cancel := context.WithCancel(context.Background())
	tk.cancel = cancel
	tk.run = runner.Start(tr, runner.Consumer{Lock: &tk.mu, Event: tk.apply, Idle: tk.idle, DrainTimeout: drainTimeout})
	if opts.AfterAttach != nil {
		opts.AfterAttach()
	}
	if err := tk.sync(ctx, false); err != nil {
		tk.Close()
		return nil, err
	}
	tk.wg.Add(2)
	go tk.watchLoss(inner)
	go tk.drainThenStop(ctx)
	return tk, nil
}

// drainTimeout bounds how long a stop waits for the reader to catch up:
// a full 8 MiB ring takes well under a second to apply.
const drainTimeout = 5 * time.Second

// drainThenStop stops the tracker once ctx ends and the reader has applied
// what the ring held then (saying so if it gave up waiting), or once the
// reader stopped by itself.
func (tk *Tracker) drainThenStop(ctx context.Context) {
	defer tk.wg.Done()
	select {
	case <-tk.done:
		return
	case <-tk.run.Done():
		tk.stop(tk.run.Err())
		return
	case <-ctx.Done():
	}
	err := tk.run.Stop()
	if errors.Is(err, runner.ErrUnread) {
		tk.log.Warn(err.Error())
		err = nil
	}
	if err == nil {
		// Events lost since the last check would leave sockets the kernel
		// has freed in the table as open (and --include-open writing
		// them): the run ends with a resync whenever anything was lost.
		// The reader has stopped: the snapshot alone decides. It is
		// bounded like the drain: a stop is not held up for long by a
		// slow dump (Stats.Unresynced then says what it left).
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		err = tk.resyncIfLost(ctx, false)
		cancel()
		if err != nil && !errors.Is(err, errNoLoss) {
			tk.log.Warn("no resync at stop: " + err.Error())
		}
		err = nil
		// The programs stay attached until Close, with nobody reading:
		// what they drop from now on was never the run's.
		tk.mu.Lock()
		tk.lossFinal = true
		tk.mu.Unlock()
	}
	tk.stop(err)
}

// apply applies (or, during a snapshot, buffers) one event; the runner
// holds tk.mu.
func (tk *Tracker) apply(ev *tracer.Event) error {
	if tk.opts.OnEvent != nil {
		tk.opts.OnEvent(ev)
	}
	if ev.Kind == tracer.SynackRetransmit {
		return nil // a listener's count (tracer.Options.Backlog), no socket's state
	}
	if tk.buffering {
		tk.buf = append(tk.buf, *ev)
		return nil
	}
	tk.stats.Events++
	return tk.table.Apply(ev)
}

// idle runs when the reader has caught up with the ring, under tk.mu.
func (tk *Tracker) idle() error {
	if tk.buffering || tk.opts.OnDrained == nil {
		return nil
	}
	return tk.opts.OnDrained()
}

// stop records why the tracker ended (the first reason) and wakes Wait.
func (tk *Tracker) stop(err error) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tk.stopped() {
		return
	}
	tk.err = err
	tk.cancel()
	close(tk.done)
}

// sync takes a snapshot while events are buffered, merges it (Load the
// first time, Resync after loss) and replays the buffer.
func (tk *Tracker) sync(ctx context.Context, resync bool) error {
	tk.mu.Lock()
	tk.buffering = true
	tk.mu.Unlock()
	socks, err := tk.dump(ctx)
	end := time.Now()
	if err == nil {
		// Events the kernel wrote before the snapshot ended are replayed
		// with the buffer, not after it.
		tk.run.CatchUp(ctx, 100*time.Millisecond)
	}
	if err == nil && !resync {
		// sockets older than the tracer: their events name the owners the
		// table has from the same snapshot. Not under the lock, which the
		// reader takes for every event.
		listeners, owners := holders.Seeds(socks)
		if err := errors.Join(tk.tr.SeedListeners(listeners), tk.tr.SeedOwners(owners)); err != nil {
			tk.log.Debug("seeding the owners of older sockets", "error", err)
		}
	}
	tk.mu.Lock()
	defer tk.mu.Unlock()
	buf := tk.buf
	tk.buf, tk.buffering = nil, false
	if err != nil {
		return err
	}
	t := tk.table
	if resync {
		err = t.Resync(socks, end, buf)
	} else {
		t.Load(socks, end)
	}
	t.SetSnapshotTime(end)
	for i := range buf {
		if err == nil {
			tk.stats.Events++
			err = t.Apply(&buf[i])
		}
	}
	return err
}

// dump lists every TCP socket of every netns, with owners.
func (tk *Tracker) dump(ctx context.Context) ([]snapshot.Socket, error) {
	res, err := snapshot.Dump(ctx, snapshot.Options{TCP: true, AllNetns: true})
	if err != nil {
		return nil, fmt.Errorf("taking the socket snapshot: %w", err)
	}
	socks := res.Sockets
	// owners first: Keep may ask for them (--pid, --comm)
	if _, err := snapshot.AttachProcesses(socks); err != nil {
		return nil, fmt.Errorf("finding socket owners: %w", err)
	}
	if tk.opts.Keep != nil {
		kept := socks[:0]
		for i := range socks {
			if tk.opts.Keep(&socks[i]) {
				kept = append(kept, socks[i])
			}
		}
		socks = kept
	}
	return socks, nil
}

// watchLoss resyncs from a fresh snapshot whenever the kernel dropped events.
func (tk *Tracker) watchLoss(ctx context.Context) {
	defer tk.wg.Done()
	tick := time.NewTicker(tk.opts.ResyncCheck)
	defer tick.Stop()
	confirm := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		err := tk.resyncIfLost(ctx, confirm)
		if errors.Is(err, errNoLoss) {
			confirm = false
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				tk.stop(err)
			}
			return
		}
		confirm = true
	}
}

// errNoLoss is resyncIfLost's answer when nothing was lost since the last
// resync (a confirming resync may have run all the same).
var errNoLoss = errors.New("no events lost")

// resyncIfLost reads the loss counters and resyncs if they grew since the
// last resync, or if always is set (without counting a resync then).
//
// always is the confirming resync: events read after a resync's snapshot
// can be older than it, so a connect whose later events were lost would
// stay in the table as a phantom. One more snapshot, once the ring holds
// only newer events, clears such phantoms.
func (tk *Tracker) resyncIfLost(ctx context.Context, always bool) error {
	tk.resyncMu.Lock()
	defer tk.resyncMu.Unlock()
	loss := tk.tr.Loss()
	lost := loss.Total()
	tk.mu.Lock()
	tk.stats.Lost, tk.stats.Loss, tk.stats.Unresynced = lost, loss, lost-tk.seenLost
	tk.mu.Unlock()
	if lost == tk.seenLost {
		if !always {
			return errNoLoss
		}
		if err := tk.sync(ctx, true); err != nil {
			return fmt.Errorf("resyncing after lost events: %w", err)
		}
		return errNoLoss
	}
	if err := tk.sync(ctx, true); err != nil {
		return fmt.Errorf("resyncing after lost events: %w", err)
	}
	tk.log.Warn(fmt.Sprintf("%d events lost; resynced from a fresh snapshot", lost-tk.seenLost))
	tk.mu.Lock()
	tk.stats.Resyncs++
	tk.stats.LastResync = time.Now()
	tk.stats.Unresynced = 0
	tk.mu.Unlock()
	tk.seenLost = lost
	return nil
}

// View calls fn with the table locked: a consistent view of every socket.
// fn must be quick; events wait meanwhile.
func (tk *Tracker) View(fn func(*Table)) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	fn(tk.table)
}

// Stats returns the counters so far.
func (tk *Tracker) Stats() Stats {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return tk.stats
}

// Hooks says which hook each feature uses.
func (tk *Tracker) Hooks() []tracer.HookStatus { return tk.tr.Hooks() }

// AddCgroups adds to the cgroups the tracer keeps (tracer.Options.ByCgroup).
func (tk *Tracker) AddCgroups(ids ...uint64) error { return tk.tr.AddCgroups(ids...) }

// Done is closed when the tracker stops by itself or is closed.
func (tk *Tracker) Done() <-chan struct{} { return tk.done }

// Err says why the tracker stopped: nil for a context end or Close.
func (tk *Tracker) Err() error {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if errors.Is(tk.err, context.Canceled) || errors.Is(tk.err, context.DeadlineExceeded) {
		return nil
	}
	return tk.err
}

func (tk *Tracker) stopped() bool {
	select {
	case <-tk.done:
		return true
	default:
		return false
	}
}

// Close stops reading and detaches. The table stays readable through View.
func (tk *Tracker) Close() error {
	var err error
	tk.closeOnce.Do(func() { err = tk.close() })
	return err
}

func (tk *Tracker) close() error {
	tk.stop(nil)
	// The goroutines use the ring until they return: it must outlive them.
	// The reader notices the cancel within FlushInterval.
	tk.run.Close()
	tk.wg.Wait()
	loss := tk.tr.Loss()
	tk.resyncMu.Lock()
	seen := tk.seenLost
	tk.resyncMu.Unlock()
	tk.mu.Lock()
	if !tk.lossFinal {
		tk.stats.Lost, tk.stats.Loss, tk.stats.Unresynced = loss.Total(), loss, loss.Total()-seen
	}
	tk.mu.Unlock()
	return tk.tr.Close()
}

// SetTimeWaitFrom sets the TIME_WAIT count of Table.Counts from a sock_diag
// dump (it may hold other states too): TIME_WAIT sockets emit no events, so
// a view that shows them (top) dumps them every interval.
func (tk *Tracker) SetTimeWaitFrom(socks []snapshot.Socket) {
	n := 0
	for i := range socks {
		if socks[i].State == tcpstate.TimeWait && (tk.opts.Keep == nil || tk.opts.Keep(&socks[i])) {
			n++
		}
	}
	tk.View(func(t *Table) { t.SetTimeWait(n) })
}

// SeedListeners tells the tracer about listeners older than it
// (tracer.Tracer.SeedListeners).
func (tk *Tracker) SeedListeners(seeds []tracer.ListenerSeed) error {
	return tk.tr.SeedListeners(seeds)
}
