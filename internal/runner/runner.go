// Package runner is the one reading loop under every consumer of a tracer's
// events: the live table (trace's holders, record, top, closewait) and
// backlog accounting. It applies events in bursts under the consumer's lock,
// catches up with a moment on request, and at a stop drains what the kernel
// wrote before it. Catching up and draining use the ring reader's Flush, not
// polling: the kernel skips most wake-ups, and a flushed reader says when it
// has read everything that was in the ring.
package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/socklife/socklife/tracer"
)

// Consumer is what a Runner feeds.
type Consumer struct {
	// Lock, if set, is held while Event and Idle run. It is taken at a
	// burst's first event and let go when the ring is empty (before the
	// reader can block) or after MaxBurst events, so whoever else takes it
	// waits at most one burst: a tenth of the cost of a lock per event
	// under churn.
	Lock sync.Locker
	// Event is called for each event, on the reading goroutine; an error
	// stops the Runner.
	Event func(*tracer.Event) error
	// Idle, if set, is called whenever the reader has caught up with the
	// ring: the moment to flush buffered render.
	Idle func() error
	// DrainTimeout bounds how long Stop reads on; 0 is 5s, well over what
	// a full 8 MiB ring takes.
	DrainTimeout time.Duration
}

// MaxBurst bounds how many events are applied under one hold of the lock.
const MaxBurst = 256

// ErrUnread is wrapped by Stop's error when the ring still held events as
// the drain timed out.
var ErrUnread = errors.New("events unread")

// Runner reads a tracer on its own goroutine until Stop.
type Runner struct {
	tr     *tracer.Tracer
	c      Consumer
	cancel context.CancelFunc
	done   chan struct{}
	err    error // why the reader returned; set before done closes

	mu sync.Mutex
	// caught is closed and replaced when the reader, asked to by waiting
	// or stopping, finds the ring empty.
	caught   chan struct{}
	waiting  bool // a CatchUp waits on caught
	stopping bool // finding the ring empty ends the reading
}

// Start starts reading tr for c.
func Start(tr *tracer.Tracer, c Consumer) *Runner {
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{tr: tr, c: c, cancel: cancel, done: make(chan struct{}), caught: make(chan struct{})}
	go func() {
		r.err = r.read(ctx)
		close(r.done)
	}()
	return r
}

func (r *Runner) read(ctx context.Context) error {
	var ev tracer.Event
	locked, n := false, 0
	unlock := func() {
		if locked {
			r.c.Lock.Unlock()
			locked = false
		}
	}
	defer unlock()
	for {
		err := r.tr.Next(ctx, &ev)
		switch {
		case err == nil:
		case errors.Is(err, tracer.ErrFlushed):
			if ctx.Err() != nil || r.caughtUp() {
				return nil
			}
			continue
		case errors.Is(err, tracer.ErrClosed), errors.Is(err, context.Canceled):
			return nil
		default:
			return err
		}
		if r.c.Lock != nil && !locked {
			r.c.Lock.Lock()
			locked, n = true, 0
		}
		if err := r.c.Event(&ev); err != nil {
			return err
		}
		n++
		if r.tr.Pending() == 0 {
			if r.c.Idle != nil {
				if err := r.c.Idle(); err != nil {
					return err
				}
			}
			unlock()
			if r.caughtUp() {
				return nil
			}
		} else if n >= MaxBurst {
			unlock()
		}
	}
}

// caughtUp wakes CatchUp's waiters if the ring is empty, and says whether
// reading ends. The ring is looked at under mu, after any waiter took its
// channel there: every event written before a CatchUp or Stop has been read
// when they learn of it. Flush is only what wakes a reader the kernel
// did not.
func (r *Runner) caughtUp() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.waiting && !r.stopping || r.tr.Pending() != 0 {
		return false
	}
	if r.waiting {
		close(r.caught)
		r.caught, r.waiting = make(chan struct{}), false
	}
	return r.stopping
}

// CatchUp returns once the reader has read what the ring held when it was
// called, or after timeout, or when ctx ends or the reader stops.
func (r *Runner) CatchUp(ctx context.Context, timeout time.Duration) {
	r.mu.Lock()
	wake := r.caught
	r.waiting = true
	r.mu.Unlock()
	if err := r.tr.Flush(); err != nil {
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-wake:
	case <-t.C:
	case <-ctx.Done():
	case <-r.done:
	}
}

// Done is closed when the reader has returned: after Stop, or by itself on
// an error (Err says which).
func (r *Runner) Done() <-chan struct{} { return r.done }

// Err is why the reader returned: nil for Stop or the tracer's Close.
func (r *Runner) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Stop reads what the ring holds now, then stops the reader and returns
// its error. If the drain takes over DrainTimeout (the kernel writes faster
// than the consumer applies), it stops anyway with an error that wraps
// ErrUnread and says how much was left.
func (r *Runner) Stop() error {
	select {
	case <-r.done:
		return r.err
	default:
	}
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	if err := r.tr.Flush(); err != nil {
		r.abort()
	}
	t := time.NewTimer(r.c.DrainTimeout)
	defer t.Stop()
	select {
	case <-r.done:
		return r.err
	case <-t.C:
	}
	unread := r.tr.Pending()
	// A consumer blocked in a write (a stalled pipe) is not woken by this:
	// callers that write bound their own wait.
	r.abort()
	<-r.done
	if r.err != nil {
		return r.err
	}
	return fmt.Errorf("stopped with %d bytes of events unread after %v: %w", unread, r.c.DrainTimeout, ErrUnread)
}

// Close stops the reader at once, without draining, and waits for it.
func (r *Runner) Close() error {
	r.abort()
	<-r.done
	return r.err
}

// abort ends reading at the next event or flush; the flush wakes a reader
// blocked on an empty ring at once rather than at its next timer.
func (r *Runner) abort() {
	r.cancel()
	r.tr.Flush()
}
