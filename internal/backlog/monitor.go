package backlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// drainWait bounds how long Run waits at the end for events still in the
// ring, so the last report counts them.
const drainWait = 500 * time.Millisecond

// lockedEvents bounds how many events the reader accounts under one hold of
// the lock.
const lockedEvents = 256

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
	m := &monitor{tr: tr, self: self, allNetns: cfg.AllNetns, acc: NewAccounting(cfg, time.Now()), tried: map[uint64]bool{}}
	// The first poll is the baseline every count starts from.
	if err := m.poll(ctx, time.Now()); err != nil {
		return err
	}
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	done := make(chan error, 1)
	go func() {
		// The lock is held across a burst of events, not taken per event
		// (a tenth of the accounting's cost under churn), and let go once
		// the ring is drained, before the reader can block, or after
		// lockedEvents, so a report never waits long.
		locked, n := false, 0
		err := tr.Read(readCtx, func(ev *tracer.Event) error {
			if onEvent != nil {
				onEvent(ev)
			}
			if accounted(ev) { // a few of a connection's events
				if !locked {
					m.mu.Lock()
					locked = true
				}
				m.acc.Observe(ev)
				n++
			}
			if locked && (n%lockedEvents == 0 || tr.Pending() == 0) {
				m.mu.Unlock()
				locked = false
			}
			return nil
		})
		if locked {
			m.mu.Unlock()
		}
		done <- err
	}()
	ticker := time.NewTicker(cfg.Interval)
	defer ticker.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				return errors.New("tracer closed while reporting")
			}
			return fmt.Errorf("reading events: %w", err)
		case now := <-ticker.C:
			if err := m.report(ctx, now, emit); err != nil && ctx.Err() == nil {
				return err
			}
			// a poll cut short by the end is redone below
		case <-ctx.Done():
			m.drain()
			stopReading()
			if err := <-done; err != nil {
				return fmt.Errorf("reading events: %w", err)
			}
			// ctx is done: the last poll runs on its own
			return m.report(context.Background(), time.Now(), emit)
		}
	}
}

type monitor struct {
	tr       *tracer.Tracer
	self     uint32
	allNetns bool
	mu       sync.Mutex // guards acc
	acc      *Accounting
	// tried holds inodes the /proc scan did not find an owner for.
	tried map[uint64]bool
}

func (m *monitor) drain() {
	deadline := time.Now().Add(drainWait)
	for m.tr.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

func (m *monitor) report(ctx context.Context, now time.Time, emit func(*Report) error) error {
	if err := m.poll(ctx, now); err != nil {
		return err
	}
	m.mu.Lock()
	r := m.acc.Tick(now)
	m.mu.Unlock()
	r.Lost = m.tr.Lost()
	return emit(r)
}

// poll dumps every listener (queue, backlog, sk_drops) and reads the netns
// counters of the namespaces they live in.
func (m *monitor) poll(ctx context.Context, now time.Time) error {
	res, err := snapshot.Dump(ctx, snapshot.Options{TCP: true, States: tcpstate.Of(tcpstate.Listen), Info: true, AllNetns: m.allNetns})
	if err != nil {
		return fmt.Errorf("listing listeners: %w", err)
	}
	m.mu.Lock()
	m.acc.ObserveDump(now, res.Sockets)
	need := m.acc.NeedOwners()
	pids := m.acc.netnsPIDs()
	m.mu.Unlock()
	m.findOwners(need)
	counters := map[uint32]Netstat{}
	for ns, pid := range pids {
		if n, err := m.readNetstat(ns, pid); err == nil {
			counters[ns] = n
		}
	}
	if _, ok := pids[m.self]; !ok {
		n, err := ReadNetstat("/proc/self/net/netstat")
		if err != nil {
			return err
		}
		counters[m.self] = n
	}
	m.mu.Lock()
	for ns, n := range counters {
		m.acc.ObserveNetstat(ns, n)
	}
	m.mu.Unlock()
	return nil
}

// readNetstat reads ns's counters through a process in it; ours for our own.
func (m *monitor) readNetstat(ns, pid uint32) (Netstat, error) {
	if ns == m.self {
		return ReadNetstat("/proc/self/net/netstat")
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil || uint32(st.Ino) != ns {
		return Netstat{}, errors.New("no process seen in the namespace")
	}
	return ReadNetstat(fmt.Sprintf("/proc/%d/net/netstat", pid))
}

// findOwners scans /proc once for listeners whose owner no event named;
// an inode it cannot place is not looked for again.
func (m *monitor) findOwners(need map[uint64]bool) {
	for ino := range need {
		if m.tried[ino] {
			delete(need, ino)
		}
	}
	if len(need) == 0 {
		return
	}
	owners, _, err := snapshot.ScanSocketOwners(func(ino uint64) bool { return need[ino] })
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range owners {
		m.acc.SetOwner(o.Inode, uint32(o.PID), o.Comm)
	}
	for ino := range need {
		m.tried[ino] = true
	}
}
