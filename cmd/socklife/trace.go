package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/socklife/socklife/internal/filter"
	"github.com/socklife/socklife/internal/holders"
	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/runner"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

type traceFlags struct {
	filter filter.Flags
	tracerFlags
	output   string
	count    uint64
	duration time.Duration
}

func newTraceCmd() *cobra.Command {
	var f traceFlags
	cmd := &cobra.Command{
		Use:   "trace [flags] [FILTER...]",
		Short: "Stream TCP state transitions as they happen",
		Long: `Print one line per TCP state change, with the process that owns the socket
even when the change runs in softirq, and the milliseconds spent in the old state
("-" when the socket was not seen entering it). An ACCEPT line marks a connection
taken off its listener's queue by accept(); its MS is the wait in the queue.
At stop (Ctrl-C, SIGTERM, --count, --duration) it prints
"socklife: N events, M lost" on stderr, with the causes of any loss, and a
warning when events were lost.`,
		Example: `  socklife trace --port 443
  socklife trace --state close-wait --state last-ack -o json`,
		Args: cobra.ArbitraryArgs, // an ss FILTER
		RunE: func(cmd *cobra.Command, args []string) error { f.filter.SetExpr(args); return runTrace(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json (one object per line)")
	f.filter.Register(fl, "only transitions from or to this state")
	f.tracerFlags.register(fl)
	fl.Uint64Var(&f.count, "count", 0, "stop after this many events")
	fl.DurationVar(&f.duration, "duration", 0, "stop after this long (e.g. 30s)")
	return cmd
}

// options checks the flags and turns them into tracer options and the
// filter's part that the kernel does not apply.
func (f traceFlags) options() (tracer.Options, *filter.Filter, render.Format, error) {
	format, err := render.ParseFormat(f.output, render.Table, render.JSON)
	if err != nil {
		return tracer.Options{}, nil, "", badInput("%w", err)
	}
	flt, err := parseFilter(&f.filter)
	if err != nil {
		return tracer.Options{}, nil, "", err
	}
	if err := f.tracerFlags.check(); err != nil {
		return tracer.Options{}, nil, "", err
	}
	if f.duration < 0 {
		return tracer.Options{}, nil, "", badInput("--duration %v is negative", f.duration)
	}
	opts, rest := flt.Split(true)
	f.tracerFlags.apply(&opts)
	states := flt.States
	if states != 0 && states&^tcpstate.Of(tcpstate.TimeWait, tcpstate.NewSynRecv) == 0 {
		// The kernel frees the socket as it enters TIME_WAIT (a minisock
		// takes over) and request socks emit nothing: no event can match.
		return tracer.Options{}, nil, "", badInput("--state: TIME_WAIT and NEW_SYN_RECV are never the state of a transition; list those sockets with: socklife snapshot -t --state time-wait")
	}
	opts.States = states
	return opts, rest, format, nil
}

func runTrace(cmd *cobra.Command, f traceFlags) error {
	opts, rest, format, err := f.options()
	if err != nil {
		return err
	}
	opts.Logger = stderrLogger(cmd.ErrOrStderr(), f.debug)
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	tr, err := startTracer(ctx, opts, rest)
	if err != nil {
		return err
	}
	defer tr.Close()
	defer cancel() // before Close: the follower adds to the tracer's map
	if f.duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, f.duration)
		defer cancel()
	}
	out := &watchedWriter{w: cmd.OutOrStdout()}
	var broken atomic.Bool
	cancelOnBrokenPipe(out.w, func() { broken.Store(true); cancel() })
	var n atomic.Uint64
	reg := holders.New()
	done := make(chan error, 1)
	go func() { done <- stream(ctx, tr, out, format, f, rest, &n, reg) }()
	// Events flow meanwhile; the ready file says attached and seeded.
	seedOlderSockets(ctx, tr, reg, opts.Logger)
	if err := writeReadyFile(f.readyFile); err != nil {
		return err
	}
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		keepHolders(ctx, tr, reg, opts.Logger)
	}()
	// before tr.Close (deferred earlier, so run later): it updates tr's maps
	defer func() { cancel(); <-kept }()
	// A reader that stopped reading leaves a write blocked in the kernel,
	// where no context reaches: a second after the stop with a write
	// blocked that long, trace ends without it. A drain that is only slow
	// (its writes go through) is waited for, traceDrain at most.
	err = untilStopped(ctx, out.Stalled, func() error { return <-done })
	if errors.Is(err, errOutputBlocked) {
		fmt.Fprintf(cmd.ErrOrStderr(), "socklife: %d events, %s (output blocked: its reader stopped reading)\n", n.Load(), render.LossSummary(tr.Loss()))
		return nil
	}
	if isBrokenPipe(err) || broken.Load() {
		return nil // `socklife trace | head`: the reader has all it wants
	}
	loss := tr.Loss()
	fmt.Fprintf(cmd.ErrOrStderr(), "socklife: %d events, %s\n", n.Load(), render.LossSummary(loss))
	if loss.Total() > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "socklife: warning: %d events lost: the trace has gaps\n", loss.Total())
	}
	return err
}

var errEnough = errors.New("count reached")

// traceDrain bounds how long trace prints on after it is told to stop: the
// events the kernel wrote before then, unless they keep coming faster.
const traceDrain = time.Second

// stream writes events until ctx ends or --count is reached, and returns how
// many it wrote. Output is buffered and flushed whenever the ring is drained,
// so a quiet trace shows each line at once and a busy one writes in blocks.
// rest is the filter's part the kernel did not apply.
func stream(ctx context.Context, tr *tracer.Tracer, out io.Writer, format render.Format, f traceFlags, rest *filter.Filter, n *atomic.Uint64, reg *holders.Registry) error {
	w := bufio.NewWriterSize(out, 64<<10)
	names, err := newNames(rest) // read on the one reading goroutine
	if err != nil {
		return err
	}
	appendEvent := render.AppendTrace
	header := render.TraceHeader
	if rest.Contained() || names.Containers.AnyContainer() {
		names.ContainerColumns = true
		header = render.TraceHeaderContainers
	}
	if format == render.JSON {
		appendEvent = render.AppendTraceJSON
	} else if _, err := w.WriteString(header); err != nil {
		return err
	} else if err := w.Flush(); err != nil {
		// The header at once: the terminal shows trace is running, and
		// `| head -1` gets its line.
		return err
	}
	var line []byte
	run := runner.Start(tr, runner.Consumer{
		Event: func(ev *tracer.Event) error {
			nameHolders(reg, ev)
			if !rest.Match(ev.Netns, ev.Local, ev.Remote, eventOwners(ev)...) ||
				rest.Contained() && !rest.Container(names.Container(ev.SockCgroupID, render.OwnerCgroup(ev))) {
				return nil
			}
			line = appendEvent(line[:0], ev, names)
			if _, err := w.Write(line); err != nil {
				return err
			}
			if c := n.Add(1); f.count > 0 && c >= f.count {
				return errEnough
			}
			return nil
		},
		Idle: w.Flush,
		// what the kernel wrote before the end is printed too, unless
		// the output is blocked (see runTrace)
		DrainTimeout: traceDrain,
	})
	select {
	case <-run.Done():
		err = run.Err()
	case <-ctx.Done():
		err = run.Stop()
	}
	if errors.Is(err, errEnough) || errors.Is(err, runner.ErrUnread) {
		err = nil
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

// nameHolders puts the holders of a child's listener on its events until
// it is accepted (the first, one seen accepting if any, stands as its
// owner), and learns acceptors from accepts. A listener no scan has listed
// yet keeps the owner the BPF side lent it, and is scanned for soon.
func nameHolders(reg *holders.Registry, ev *tracer.Event) {
	if ev.ListenerInode == 0 {
		return
	}
	k := holders.Key{Netns: ev.Netns, Inode: ev.ListenerInode}
	switch {
	case ev.Kind == tracer.Accept && ev.OwnerSource == tracer.OwnerTask:
		reg.Accepted(k, ev.Owner.PID, ev.Owner.Comm, ev.Time)
	case ev.OwnerSource == tracer.OwnerListener:
		if set := reg.Group(k); set != nil && len(set.Holders) > 0 {
			ev.Holders = set.Holders
			ev.Owner.PID, ev.Owner.Comm = set.Holders[0].PID, set.Holders[0].Comm
		}
	}
}

// seedOlderSockets tells the tracer about the sockets older than itself:
// the owner of each (so that their softirq transitions name it, as record
// does from the same kind of snapshot) and the holders of each listener
// (so that a running service's handshakes, in softirq before its first
// accept, name them, and --pid matches a worker holding the listener).
// The stream runs meanwhile: the /proc scan takes a while, and events
// should not wait for it.
func seedOlderSockets(ctx context.Context, tr *tracer.Tracer, reg *holders.Registry, log *slog.Logger) {
	start := time.Now()
	res, err := snapshot.Dump(ctx, snapshot.Options{TCP: true, AllNetns: true})
	if err == nil {
		_, err = snapshot.AttachProcesses(res.Sockets)
	}
	if err == nil {
		reg.Load(res.Sockets, start, false)
		listeners, owners := holders.Seeds(res.Sockets)
		err = errors.Join(tr.SeedListeners(listeners), tr.SeedOwners(owners))
	}
	if err != nil && ctx.Err() == nil {
		log.Debug("naming the owners of older sockets", "error", err)
	}
}
