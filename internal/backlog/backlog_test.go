package backlog

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/tracer"
)

const (
	testInterval = 250 * time.Millisecond
	testStall    = 500 * time.Millisecond
	slowPace     = 200 * time.Millisecond
	slowBacklog  = 4
	slowClients  = 50
	promptConns  = 20
)

// monitorRun is Run on its own goroutine, with what it reported.
type monitorRun struct {
	mu      sync.Mutex
	reports []*Report
	got     []reportAt                 // when each report reached us
	accepts map[[2]uint16]tracer.Event // by listener port, client port
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
}

type reportAt struct {
	r  *Report
	at time.Time
}

func startMonitor(t *testing.T, cfg Config) *monitorRun {
	t.Helper()
	testutil.RequireRoot(t)
	// Only this process's sockets: the machine is shared, and other
	// traffic would compete for the ring.
	tr, err := tracer.New(tracer.Options{Backlog: true, PID: uint32(os.Getpid())})
	if err != nil {
		t.Fatalf("starting the tracer: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	m := &monitorRun{accepts: map[[2]uint16]tracer.Event{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		m.err = Run(ctx, tr, cfg, func(r *Report) error {
			m.mu.Lock()
			m.reports = append(m.reports, r)
			m.got = append(m.got, reportAt{r, time.Now()})
			m.mu.Unlock()
			return nil
		}, func(ev *tracer.Event) {
			m.mu.Lock()
			if ev.Kind == tracer.Accept {
				m.accepts[[2]uint16{ev.Local.Port(), ev.Remote.Port()}] = *ev
			}
			m.mu.Unlock()
		})
		close(m.done)
	}()
	t.Cleanup(func() { cancel(); <-m.done })
	// the first report says the baseline poll is behind us
	testutil.WaitFor(t, 5*time.Second, "the first report", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.reports) > 0
	})
	return m
}

func (m *monitorRun) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	<-m.done
	if m.err != nil {
		t.Fatalf("Run: %v", m.err)
	}
}

// atEnd is a listener's entry in a report, with the report's interval.
type atEnd struct {
	ListenerReport
	start, end time.Time
}

// fromReports gathers, under the lock, what pick takes from each report.
func fromReports[T any](m *monitorRun, pick func(r *Report, out []T) []T) []T {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []T
	for _, r := range m.reports {
		out = pick(r, out)
	}
	return out
}

// listenerReports returns every report's entry for the listener on port.
func (m *monitorRun) listenerReports(port uint16) []atEnd {
	return fromReports(m, func(r *Report, out []atEnd) []atEnd {
		for _, l := range r.Listeners {
			if l.Local.Port() == port {
				out = append(out, atEnd{l, r.Start, r.End})
			}
		}
		return out
	})
}

func (m *monitorRun) stalls(port uint16) []StallEvent {
	return fromReports(m, func(r *Report, out []StallEvent) []StallEvent {
		for _, ev := range r.Stalls {
			if ev.Local.Port() == port {
				out = append(out, ev)
			}
		}
		return out
	})
}

// TestSlowAcceptor: a listener with backlog 4 whose owner accepts one
// connection every 200 ms, hit by 50 clients, then not at all for 2 s,
// then promptly; beside it a listener that accepts at once.
func TestSlowAcceptor(t *testing.T) {
	// Enough Ps that a thread returning from connect() or accept() never
	// queues for one behind the 50 clients: the acceptor must be prompt
	// for the prompt listener's waits to be short.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(64))
	// No GC for these seconds: a stop-the-world waits for every P, and on
	// a loaded machine one preempted P held the prompt acceptor out of
	// accept() for 10-20 ms.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	m := startMonitor(t, Config{Interval: testInterval, Stall: testStall})
	requireRealtime(t)
	slow := newAcceptor(t, slowBacklog, true)
	slow.setPace(slowPace)
	prompt := newAcceptor(t, 128, false)
	dropsBefore := ssDropsOf(t, slow.port)
	netBefore, err := ReadNetstat("/proc/self/net/netstat")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	burst := time.Now()
	slowDial := dial(ctx, slow.port, slowClients, 100*time.Millisecond, 0)
	promptDial := dial(ctx, prompt.port, promptConns, time.Second, 150*time.Millisecond)
	time.Sleep(2 * time.Second) // the slow phase runs for a set time: nothing to wait for
	lastCall, stoppedAt := slow.pause(t)
	held := queuedNow(t, slow.port) // these wait the whole pause
	time.Sleep(2 * time.Second)
	slow.setPace(0)
	resumed := slow.resumedAt
	// A client whose final ACK and byte were dropped while the queue was
	// full gets in at its byte's next retransmit, which backs off to
	// seconds over the slow phase and the pause (tens of seconds on the
	// kernel matrix's emulated CPUs).
	testutil.WaitFor(t, 30*time.Second, "every client accepted", func() bool {
		n := int(slow.count.Load())
		return n == slowDial.count() && n == slowClients && prompt.count.Load() == promptConns
	})
	dropsAfter := ssDropsOf(t, slow.port)
	clientResent := slowDial.resent()
	m.stop(t)
	cancel()
	slowDial.wg.Wait()
	promptDial.wg.Wait()
	netAfter, err := ReadNetstat("/proc/self/net/netstat")
	if err != nil {
		t.Fatal(err)
	}

	reps := m.listenerReports(slow.port)
	checkQueue(t, reps, burst)
	checkWaits(t, m, slow, slowDial, clientResent, reps[len(reps)-1].ListenerReport)
	checkPauseWaits(t, m, slow, held, resumed)
	checkDrops(t, m, reps[len(reps)-1].ListenerReport, dropsAfter-dropsBefore, netBefore, netAfter)
	checkStall(t, m, slow, lastCall, stoppedAt, resumed)
	checkPrompt(t, m, prompt, promptDial)
}
