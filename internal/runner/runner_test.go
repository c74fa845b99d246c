package runner

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/tracer"
)

// counter counts transitions into CLOSE of sockets on port.
type counter struct {
	mu     sync.Mutex
	port   uint16
	closes int
}

func (c *counter) event(ev *tracer.Event) error {
	if ev.Kind == tracer.StateChange && ev.New == tcpstate.Close && (ev.Local.Port() == c.port || ev.Remote.Port() == c.port) {
		c.closes++
	}
	return nil
}

func start(t *testing.T) (*tracer.Tracer, net.Listener) {
	t.Helper()
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	// a flush interval far beyond the test's waits: only Flush can
	// wake a reader the kernel did not
	tr, err := tracer.New(tracer.Options{Ports: []uint16{port}, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, ln
}

// Stop reads every event written before it, though the kernel skipped the
// wake-ups (the reader's own timer would wait an hour).
func TestStopDrains(t *testing.T) {
	tr, ln := start(t)
	c := &counter{port: uint16(ln.Addr().(*net.TCPAddr).Port)}
	run := Start(tr, Consumer{Lock: &c.mu, Event: c.event})
	const n = 50
	testutil.Churn(t, ln, n)
	if err := run.Stop(); err != nil {
		t.Fatal(err)
	}
	// each connection closes two sockets (client, server)
	if c.closes != 2*n {
		t.Errorf("read %d closes before Stop returned, want %d", c.closes, 2*n)
	}
}

// CatchUp returns once the events written before it are applied.
func TestCatchUp(t *testing.T) {
	tr, ln := start(t)
	c := &counter{port: uint16(ln.Addr().(*net.TCPAddr).Port)}
	run := Start(tr, Consumer{Lock: &c.mu, Event: c.event})
	defer run.Close()
	for round := 1; round <= 3; round++ {
		testutil.Churn(t, ln, 10)
		run.CatchUp(context.Background(), time.Minute)
		c.mu.Lock()
		got := c.closes
		c.mu.Unlock()
		if got != 2*10*round {
			t.Fatalf("round %d: %d closes after CatchUp, want %d", round, got, 2*10*round)
		}
	}
}

// An error from the consumer stops the runner and is its Err.
func TestConsumerError(t *testing.T) {
	tr, ln := start(t)
	stop := errors.New("enough")
	run := Start(tr, Consumer{Event: func(*tracer.Event) error { return stop }})
	testutil.Churn(t, ln, 1)
	run.CatchUp(context.Background(), time.Minute)
	<-run.Done()
	if !errors.Is(run.Err(), stop) {
		t.Errorf("Err() = %v, want %v", run.Err(), stop)
	}
	if err := run.Stop(); !errors.Is(err, stop) {
		t.Errorf("Stop() = %v, want %v", err, stop)
	}
}
