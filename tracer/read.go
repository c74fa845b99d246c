package tracer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// ctxCheckEvery bounds how many records Next decodes between looks at its
// context, so a flood cannot hide a cancellation.
const ctxCheckEvery = 64

// Next blocks until the next event and decodes it into ev, reusing ev and
// the tracer's record buffer. It returns ctx's error once ctx is done
// (noticed within FlushInterval), ErrFlushed after a Flush (see there) and
// ErrClosed after Close.
func (t *Tracer) Next(ctx context.Context, ev *Event) error {
	for {
		if t.reads++; t.reads%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if t.rec.Remaining == 0 {
			// About to block in epoll_wait: pass through the scheduler
			// first. Go's monitor thread (sysmon) preempts a goroutine
			// not rescheduled for 10ms, and that (like a syscall
			// blocking over 10ms, see FlushInterval) sends it back to
			// polling every 20µs: ~1,500 wake-ups/s and a third of the
			// tracer's CPU under churn here. With both avoided, ~100/s.
			runtime.Gosched()
		}
		err := t.reader.ReadInto(&t.rec)
		switch {
		case err == nil:
			if t.tap != nil {
				t.tap(t.rec.RawSample)
			}
			if err := decode(t.rec.RawSample, &t.wire, t.clock, &t.comms, ev); err != nil {
				t.badRecs++
				continue
			}
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The ring is drained: the kernel skips most wake-ups, so
			// this timer is what bounds an event's wait.
			if err := ctx.Err(); err != nil {
				return err
			}
			t.reader.SetDeadline(time.Now().Add(t.flush))
		case errors.Is(err, ringbuf.ErrFlushed):
			// Everything in the ring when Flush was called has been read.
			return ErrFlushed
		case errors.Is(err, ringbuf.ErrClosed), errors.Is(err, os.ErrClosed):
			return ErrClosed
		default:
			return fmt.Errorf("reading the ring buffer: %w", err)
		}
	}
}

// Read calls fn for each event until ctx is done, the tracer is closed
// (both return nil) or fn returns an error, which Read returns. It reads
// through flushes; internal/runner is the reader that drains at a stop.
func (t *Tracer) Read(ctx context.Context, fn func(*Event) error) error {
	var ev Event
	for {
		err := t.Next(ctx, &ev)
		switch {
		case err == nil:
			if err := fn(&ev); err != nil {
				return err
			}
		case errors.Is(err, ErrFlushed):
		case errors.Is(err, ErrClosed), ctx.Err() != nil && errors.Is(err, ctx.Err()):
			return nil
		default:
			return err
		}
	}
}

// ErrFlushed is returned by Next once it has read every event the ring held
// when Flush was called; the next call reads on.
var ErrFlushed = errors.New("ring flushed")

// Flush makes Next return ErrFlushed once it has read what the ring holds
// now, even where the kernel skipped the wake-up: how a reader catches up
// with a moment (a snapshot's end, a stop) without polling. Flushes made
// before Next gets to them may be answered by one ErrFlushed.
func (t *Tracer) Flush() error { return t.reader.Flush() }

// Pending is how many bytes wait in the ring: 0 once the reader has caught
// up, the moment to flush buffered output.
func (t *Tracer) Pending() int { return t.reader.AvailableBytes() }
