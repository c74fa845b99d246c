package backlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/holders"
	"github.com/socklife/socklife/internal/runner"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// drainWait bounds how long Run waits at the end for events still in the
// ring, so the last report counts them.
const drainWait = 500 * time.Millisecond

// Run accounts tr's events (a tracer started with Options.Backlog) until
// ctx ends, polling listeners through sock_diag and the netns counters every
// cfg.Interval and passing each interval's Report to emit; a last, shorter
// interval is reported at the end. onEvent, if not nil, sees every event
// first, on the reading goroutine.
func Run(ctx context.Context, tr *tracer.Tracer, cfg Config, emit func(*Report) error, onEvent func(*tracer.Event)) error {
	cfg = cfg.withDefaults()
	self, err := snapshot.CurrentNetns()
	if err != nil {
		return err
	}
	m := &monitor{seed: tr.SeedListeners, loss: tr.Loss, acceptCounts: cfg.ListenerAccepts, self: self, allNetns: cfg.AllNetns,
		acc: NewAccounting(cfg, time.Now()), tried: map[Key]bool{}}
	// The first poll is the baseline every count starts from.
	if _, err := m.poll(ctx, time.Now()); err != nil {
		return err
	}
	run := runner.Start(tr, runner.Consumer{Lock: &m.mu, DrainTimeout: drainWait, Event: func(ev *tracer.Event) error {
		if onEvent != nil {
			onEvent(ev)
		}
		if accounted(ev) { // a few of a connection's events
			m.acc.Observe(ev)
		}
		return nil
	}})
	defer run.Close()
	ticker := time.NewTicker(cfg.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-run.Done():
			if err := run.Err(); err != nil {
				return fmt.Errorf("reading events: %w", err)
			}
			return errors.New("tracer closed while reporting")
		case now := <-ticker.C:
			if err := m.report(ctx, now, emit); err != nil && ctx.Err() == nil {
				return err
			}
			// a poll cut short by the end is redone below
		case <-ctx.Done():
			// the last report counts what the ring held at the end; a
			// drain cut short by a flood leaves those events uncounted
			if err := run.Stop(); err != nil && !errors.Is(err, runner.ErrUnread) {
				return fmt.Errorf("reading events: %w", err)
			}
			// ctx is done: the last poll runs on its own
			return m.report(context.Background(), time.Now(), emit)
		}
	}
}

type monitor struct {
	// seed tells the tracer about listeners older than it; loss reads
	// its lost events
	seed func([]tracer.ListenerSeed) error
	loss func() tracer.Loss
	// acceptCounts reads the kernel's accept counts (Config.ListenerAccepts)
	acceptCounts func() (map[tracer.AcceptKey]tracer.ListenerAccepts, error)
	self         uint32
	allNetns     bool
	mu           sync.Mutex // guards acc
	acc          *Accounting
	// lastScan is when /proc was last scanned for listener holders;
	// tried holds the listeners looked for since the last periodic scan.
	lastScan time.Time
	tried    map[Key]bool
}

// holdersPeriod is how often listener holders are rescanned: servers fork
// workers after listen(), and replace them at every reload.
const holdersPeriod = 30 * time.Second

func (m *monitor) report(ctx context.Context, now time.Time, emit func(*Report) error) error {
	listening, err := m.poll(ctx, now)
	if err != nil {
		return err
	}
	m.mu.Lock()
	r := m.acc.Tick(now)
	m.mu.Unlock()
	r.Loss = m.loss()
	r.Lost = r.Loss.Total()
	r.Listening = listening
	return emit(r)
}

// poll dumps the listeners (queue, backlog, sk_drops) of our namespace,
// of those events came from, or of all with Config.AllNetns; finds their
// holders when some are new; reads the netns counters of the namespaces
// they live in; and returns the listeners dumped.
func (m *monitor) poll(ctx context.Context, now time.Time) ([]snapshot.Socket, error) {
	m.mu.Lock()
	netns := m.acc.EventNetns()
	m.mu.Unlock()
	started := time.Now()
	res, err := snapshot.Dump(ctx, snapshot.Options{TCP: true, States: tcpstate.Of(tcpstate.Listen), Info: true,
		AllNetns: m.allNetns, Netns: netns})
	if err != nil {
		return nil, fmt.Errorf("listing listeners: %w", err)
	}
	// the kernel's accept counts after the dump: every listener they
	// name that was listening before the dump is in it
	var accepts map[tracer.AcceptKey]tracer.ListenerAccepts
	if m.acceptCounts != nil {
		if accepts, err = m.acceptCounts(); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	m.acc.ObserveDump(now, res.Sockets)
	m.acc.ObserveListenerAccepts(accepts)
	missed := m.acc.Holders().Missed()
	m.mu.Unlock()
	m.scanHolders(res.Sockets, started, missed)
	m.mu.Lock()
	pids := m.acc.netnsPIDs()
	m.mu.Unlock()
	counters := map[uint32]Netstat{}
	for ns, pid := range pids {
		if n, err := m.readNetstat(ns, pid); err == nil {
			counters[ns] = n
		}
	}
	if _, ok := pids[m.self]; !ok {
		n, err := ReadNetstat("/proc/self/net/netstat")
		if err != nil {
			return nil, err
		}
		counters[m.self] = n
	}
	m.mu.Lock()
	for ns, n := range counters {
		m.acc.ObserveNetstat(ns, n)
	}
	m.mu.Unlock()
	return res.Sockets, nil
}

// scanHolders finds the holders of the dumped listeners in /proc, at the
// first poll, every holdersPeriod, and when a listener no scan listed was
// looked up (new since the last scan); it also tells the tracer about them,
// so that enqueues on listeners older than it name their listener.
func (m *monitor) scanHolders(listeners []snapshot.Socket, started time.Time, missed []Key) {
	due := m.lastScan.IsZero() || time.Since(m.lastScan) >= holdersPeriod
	if due {
		clear(m.tried)
	}
	for _, k := range missed {
		if !m.tried[k] {
			m.tried[k] = true
			due = true
		}
	}
	if !due {
		return
	}
	m.lastScan = time.Now()
	if _, err := snapshot.AttachProcesses(listeners); err != nil {
		return
	}
	// only some namespaces were dumped: a listener of another one stays
	m.acc.Holders().Load(listeners, started, true)
	seeds, _ := holders.Seeds(listeners)
	_ = m.seed(seeds) // best effort: an enqueue it misses is counted by port
}

// readNetstat reads ns's counters: ours directly, another's through a
// process in it or, where no holder of its listeners lives in it (sockets
// passed in from outside, a named namespace), from a thread moved into it:
// /proc/thread-self/net shows the thread's namespace.
func (m *monitor) readNetstat(ns, pid uint32) (Netstat, error) {
	if ns == m.self {
		return ReadNetstat("/proc/self/net/netstat")
	}
	var st unix.Stat_t
	if pid != 0 && unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && uint32(st.Ino) == ns {
		return ReadNetstat(fmt.Sprintf("/proc/%d/net/netstat", pid))
	}
	var n Netstat
	err := snapshot.RunInNetns(ns, func() error {
		var err error
		n, err = ReadNetstat("/proc/thread-self/net/netstat")
		return err
	})
	return n, err
}

// Poller is Run without its reader, for a caller whose events come from a
// tracer it reads itself (serve feeds live.Tracker's events through
// Observe): polls and reports on demand instead of on a ticker. Observe
// may run beside Report; Reports must not overlap (serve's collections
// are one at a time).
type Poller struct{ m *monitor }

// NewPoller takes the baseline poll every count starts from. seed and loss
// are the tracer's SeedListeners and Loss.
func NewPoller(ctx context.Context, cfg Config, seed func([]tracer.ListenerSeed) error, loss func() tracer.Loss) (*Poller, error) {
	self, err := snapshot.CurrentNetns()
	if err != nil {
		return nil, err
	}
	m := &monitor{seed: seed, loss: loss, acceptCounts: cfg.ListenerAccepts, self: self, allNetns: cfg.AllNetns,
		acc: NewAccounting(cfg.withDefaults(), time.Now()), tried: map[Key]bool{}}
	if _, err := m.poll(ctx, time.Now()); err != nil {
		return nil, err
	}
	return &Poller{m: m}, nil
}

// Observe accounts one tracer event (those of no interest are skipped).
func (p *Poller) Observe(ev *tracer.Event) {
	if !accounted(ev) {
		return
	}
	p.m.mu.Lock()
	p.m.acc.Observe(ev)
	p.m.mu.Unlock()
}

// Report polls the listeners and the netns counters and closes the
// interval since the last Report at now.
func (p *Poller) Report(ctx context.Context, now time.Time) (*Report, error) {
	var r *Report
	err := p.m.report(ctx, now, func(rep *Report) error { r = rep; return nil })
	return r, err
}
