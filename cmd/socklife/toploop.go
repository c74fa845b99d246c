package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/internal/filter"
	"github.com/socklife/socklife/internal/holders"
	"github.com/socklife/socklife/internal/live"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/topview"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// watchConfig is what top and closewait share: the interval, the growth
// window, and how to start the live table.
type watchConfig struct {
	interval time.Duration
	window   time.Duration
	minAge   time.Duration // CLOSE_WAIT sockets younger are left out (topview.Sampler.MinAge)
	// listenerHolders names the listeners' holders from /proc (top shows
	// listeners; closewait does not, and skips the scans)
	listenerHolders bool
	tracerFlags
	filter filter.Flags
	by     string // --by
	// flt is filter, group by, parsed by check
	flt   *filter.Filter
	group closewait.Group
}

// register adds the flags top and closewait share but for --interval and
// --window, whose defaults differ.
func (c *watchConfig) register(fl *pflag.FlagSet) {
	c.filter.Register(fl, "")
	c.tracerFlags.register(fl)
	fl.StringVar(&c.by, "by", "process", "what a CLOSE-WAIT row stands for: process, container (its processes together) or pod (its containers together); the host's processes keep a row each")
}

func (c *watchConfig) check() error {
	flt, err := parseFilter(&c.filter)
	if err != nil {
		return err
	}
	c.flt = flt
	if c.group, err = closewait.ParseGroup(c.by); err != nil {
		return badInput("--by: %w", err)
	}
	if err := c.tracerFlags.check(); err != nil {
		return err
	}
	if c.interval < 10*time.Millisecond {
		return badInput("--interval %v: want at least 10ms", c.interval)
	}
	if c.window <= 0 {
		return badInput("--window %v: want a positive duration", c.window)
	}
	return nil
}

// watch starts the live table and calls frame at every interval, and onKey
// for every byte from keys (nil: none), until ctx ends or either returns
// false or an error; stopGrace after ctx ends at most, whatever a frame's
// write is waiting for.
func watch(ctx context.Context, stderr io.Writer, cfg watchConfig, frame func(*topview.Frame) (bool, error),
	keys <-chan byte, onKey func(byte) (bool, error)) error {
	return untilStopped(ctx, nil, func() error { return watchFrames(ctx, stderr, cfg, frame, keys, onKey) })
}

func watchFrames(ctx context.Context, stderr io.Writer, cfg watchConfig, frame func(*topview.Frame) (bool, error),
	keys <-chan byte, onKey func(byte) (bool, error)) error {
	log := stderrLogger(stderr, cfg.debug)
	// The table holds only what the filter keeps: the kernel filters
	// events, Keep the older sockets (before their owners are known), and
	// the frames test each socket whole (a listener by any of its holders). The pid stays out of the
	// kernel: there a socket's owner is who made it, while a leak belongs
	// to who holds it now (fds passed on, forks), which /proc names.
	topts, _ := cfg.flt.Split(false)
	cfg.tracerFlags.apply(&topts)
	follow := kernelCgroups(&topts, cfg.flt)
	tk, err := live.Start(ctx, live.Options{Tracer: topts, Keep: cfg.flt.Unowned().Socket, Logger: log})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer tk.Close()
	if err := writeReadyFile(cfg.readyFile); err != nil {
		return err
	}
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	go follow(followCtx, tk.AddCgroups)
	var hooks []string
	for _, h := range tk.Hooks() {
		hooks = append(hooks, string(h.Feature)+"="+hookName(h, "off"))
	}
	names, err := newNames(cfg.flt)
	if err != nil {
		return err
	}
	sampler := topview.NewSampler(cfg.window, cfg.group)
	sampler.MinAge = cfg.minAge
	var reg *holders.Registry
	if cfg.listenerHolders {
		var stop func()
		reg, stop = startHolders(ctx, log)
		defer stop()
	}
	tick := time.NewTicker(cfg.interval)
	defer tick.Stop()
	for first := true; ; first = false {
		for !first {
			select {
			case <-ctx.Done():
				return nil
			case <-tk.Done():
				return tk.Err()
			case k, ok := <-keys:
				if !ok {
					keys = nil
					continue
				}
				if more, err := onKey(k); err != nil || !more {
					return err
				}
				continue
			case <-tick.C:
			}
			break
		}
		f, err := sample(ctx, tk, sampler, topview.Input{Hooks: hooks, Keep: cfg.flt.Match, Holders: reg,
			Containers: names.Containers, KeepContainer: cfg.flt.Container}, nil)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		more, err := frame(&f)
		if err != nil || !more {
			return err
		}
	}
}

// sample gathers one frame: TIME_WAIT and the listeners' queues come from
// sock_diag (neither emits events), the rest from the table. in holds what
// stays the same from frame to frame. also, if not nil, reads the same
// table (and the dump of listeners and TIME_WAIT sockets) in the same
// moment: serve's counts per namespace.
func sample(ctx context.Context, tk *live.Tracker, s *topview.Sampler, in topview.Input,
	also func(*live.Table, []snapshot.Socket)) (topview.Frame, error) {
	// One dump for both: each walks the kernel's whole hash table.
	res, err := snapshot.Dump(ctx, snapshot.Options{TCP: true, AllNetns: true, States: tcpstate.Of(tcpstate.Listen, tcpstate.TimeWait)})
	if err != nil {
		return topview.Frame{}, fmt.Errorf("reading the accept queues and TIME_WAIT sockets: %w", err)
	}
	tk.SetTimeWaitFrom(res.Sockets)
	dumped := slices.Clone(res.Sockets)
	listening := slices.DeleteFunc(res.Sockets, func(s snapshot.Socket) bool { return s.State != tcpstate.Listen })
	in.Stats, in.Listening = tk.Stats(), listening
	var f topview.Frame
	tk.View(func(t *live.Table) {
		in.At, in.Table = time.Now(), t
		f = s.Sample(in)
		if also != nil {
			also(t, dumped)
		}
	})
	return f, nil
}

// startHolders names listeners' holders from /proc (a pre-fork server's
// workers, for --pid and the PID column), rescanned as servers fork, until
// stop.
func startHolders(ctx context.Context, log *slog.Logger) (reg *holders.Registry, stop func()) {
	reg = holders.New()
	if _, err := reg.Refresh(ctx); err != nil && ctx.Err() == nil {
		log.Debug("finding listener holders", "error", err)
	}
	keepCtx, stopKeep := context.WithCancel(ctx)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		reg.Keep(keepCtx, holdersPeriod, holdersSoon, nil, func(err error) { log.Debug("rescanning listener holders", "error", err) })
	}()
	return reg, func() { stopKeep(); <-kept }
}

// hookName is the hook a feature uses, or off when none is attached.
func hookName(h tracer.HookStatus, off string) string {
	if h.Attached() {
		return h.Hook.String()
	}
	return off
}
