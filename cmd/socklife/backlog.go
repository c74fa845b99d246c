package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/socklife/socklife/internal/backlog"
	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/internal/filter"
	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/tracer"
)

type backlogFlags struct {
	output   string
	filter   filter.Flags
	interval time.Duration
	stall    time.Duration
	forDur   time.Duration
	allNetns bool
	by       string // --by: listener, container or pod
	tracerFlags
}

func newBacklogCmd() *cobra.Command {
	var f backlogFlags
	cmd := &cobra.Command{
		Use:   "backlog [flags] [FILTER...]",
		Short: "Diagnose accept queues: depth, accept wait, drops and stalled acceptors per listener",
		Long: `Show, per listening TCP socket and per interval, worst first: the accept-queue
length and its peak against the listen() backlog, the share of the interval the
queue was full (length > backlog), the SYN (half-open) queue, how long accepted
connections waited in the queue (p50/p90/p99/max), drops (the listener's
sk_drops, as ss -tlnm shows) and SYN-ACK retransmits, beside the netns counters
TcpExtListenOverflows and TcpExtListenDrops. A listener whose queue is not
empty while nobody has called accept() for longer than --stall is flagged
STALLED; "stall" lines mark when that begins and ends and name who should
have accepted: the holders seen accepting, or, when none was seen (they
stopped before socklife started), every holder, saying so. PID shows the
first holder and how many more hold the listener ("3121+2": a pre-fork
server's workers and master). A stall that began before socklife saw the
listener shows its age as a lower bound (">=1.5s").

SYNs that find a listener's SYN queue full are answered with SYN cookies or
dropped (TcpExtTCPReqQFullDoCookies, TCPReqQFullDrop): the interval gets a
"SYN flood" line with the namespace's Syncookies counters, and SYNQ shows
FULL on a listener whose half-open queue went past its backlog.

With --for, it exits after that long with status 1 if any listener stalled or
dropped a connection or a SYN flood was seen, 0 otherwise: a check for
scripts and alerts.

The filter flags are every command's: --port is either side (ss's sport or
dport), which for a listener is its own port, as --port meant here before;
a listener has no peer, so --dport and --dst keep none.`,
		Example: `  socklife backlog --port 443
  socklife backlog --for 30s --stall 500ms -o json`,
		Args: cobra.ArbitraryArgs, // an ss FILTER
		RunE: func(cmd *cobra.Command, args []string) error { f.filter.SetExpr(args); return runBacklog(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json (one object per interval)")
	f.filter.Register(fl, "")
	fl.DurationVar(&f.interval, "interval", time.Second, "report every this long")
	fl.DurationVar(&f.stall, "stall", time.Second, "flag a listener with a non-empty queue and no accept() for longer than this")
	fl.BoolVar(&f.allNetns, "all-netns", false, "list the listeners of every network namespace each interval (without it: ours and those events came from)")
	fl.DurationVar(&f.forDur, "for", 0, "stop after this long; exit 1 if any listener stalled or dropped")
	fl.StringVar(&f.by, "by", "listener", "listener (worst first), or container or pod: a container's (pod's) listeners together, after its worst")
	f.tracerFlags.register(fl)
	return cmd
}

func (f backlogFlags) check() (render.Format, error) {
	format, err := render.ParseFormat(f.output, render.Table, render.JSON)
	if err != nil {
		return "", badInput("%w", err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{{"--interval", f.interval, 10 * time.Millisecond}, {"--stall", f.stall, time.Millisecond}, {"--for", f.forDur, 0}} {
		if d.v < d.min {
			return "", badInput("%s %v is below %v", d.name, d.v, d.min)
		}
	}
	if err := f.tracerFlags.check(); err != nil {
		return "", err
	}
	if f.by != "listener" {
		if g, err := closewait.ParseGroup(f.by); err != nil || g == closewait.ByProcess {
			return "", badInput("--by %q: want listener, container or pod", f.by)
		}
	}
	return format, nil
}

// groupKey is what --by puts together: a listener's pod (a container
// outside pods: its container) or container; "" for the host's.
func (f backlogFlags) groupKey(l *backlog.ListenerReport) string {
	switch {
	case !l.InContainer || f.by == "listener":
		return ""
	case f.by == "pod" && l.Container.Pod.UID != "":
		return "pod " + l.Container.Pod.UID
	}
	return "container " + l.Container.ID
}

func runBacklog(cmd *cobra.Command, f backlogFlags) error {
	format, err := f.check()
	if err != nil {
		return err
	}
	flt, err := parseFilter(&f.filter)
	if err != nil {
		return err
	}
	// Ports, namespace and family are filtered in the kernel too
	// (children and SYN-ACKs carry the listener's port as theirs); the
	// pid only here, since a listener that predates us has no owner in
	// BPF until it accepts. Listeners are matched whole, holders and all.
	names, err := newNames(flt)
	if err != nil {
		return err
	}
	opts, _ := flt.Split(false)
	opts.Backlog = true
	f.tracerFlags.apply(&opts)
	opts.Logger = stderrLogger(cmd.ErrOrStderr(), f.debug)
	followCtx, stopFollow := context.WithCancel(cmd.Context())
	tr, err := startTracer(followCtx, opts, flt)
	if err != nil {
		stopFollow()
		return err
	}
	defer tr.Close()
	defer stopFollow() // before Close: the follower adds to the tracer's map
	if st := acceptHook(tr); !st.Attached() {
		return fmt.Errorf("no hook for accept() attached (%s): accept waits and stalls cannot be measured", st.Why())
	}
	if err := writeReadyFile(f.readyFile); err != nil {
		return err
	}
	ctx := cmd.Context()
	if f.forDur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.forDur)
		defer cancel()
	}
	p := &render.Backlog{Out: cmd.OutOrStdout(), JSON: format == render.JSON, Clear: !f.forDurSet() && isTerminal(cmd.OutOrStdout()), Names: names}
	var t backlogTally
	cfg := backlog.Config{Interval: f.interval, Stall: f.stall, Keep: flt.Match, AllNetns: f.allNetns,
		Containers: names.Containers, KeepContainer: flt.Container}
	emit := func(r *backlog.Report) error {
		backlog.GroupListeners(r.Listeners, f.groupKey)
		t.add(r)
		return p.Write(r)
	}
	if err := untilStopped(ctx, nil, func() error { return backlog.Run(ctx, tr, cfg, emit, nil) }); err != nil {
		if isBrokenPipe(err) {
			return nil
		}
		return err
	}
	if loss := tr.Loss(); loss.Total() > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "socklife: warning: %d events lost (%s): the accounting of the listeners they touched is short by as many\n", loss.Total(), render.LossCauses(loss))
	}
	if f.forDur == 0 {
		return nil
	}
	for _, ns := range slices.Sorted(maps.Keys(t.synFlood)) {
		fmt.Fprintf(cmd.ErrOrStderr(), "socklife: %s\n", render.SynFloodLine(ns, t.synFlood[ns]))
	}
	if t.stalled > 0 || t.dropped > 0 || len(t.synFlood) > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "socklife: %d stalls, %d drops\n", t.stalled, t.dropped)
		return exitStatus(1)
	}
	return nil
}

// backlogTally keeps the counts --for decides its exit status by.
type backlogTally struct {
	stalled int // stall begin events so far
	dropped uint64
	// synFlood sums the namespaces' growth over the intervals that had a
	// SYN flood, by namespace
	synFlood map[uint32]backlog.Netstat
}

func (t *backlogTally) add(r *backlog.Report) {
	for _, s := range r.Stalls {
		if s.Begin {
			t.stalled++
		}
	}
	for _, l := range r.Listeners {
		t.dropped += l.Drops
	}
	for _, ns := range r.Netns {
		if ns.SynFlood {
			if t.synFlood == nil {
				t.synFlood = map[uint32]backlog.Netstat{}
			}
			t.synFlood[ns.Netns] = t.synFlood[ns.Netns].Add(ns.Interval)
		}
	}
}

func (f backlogFlags) forDurSet() bool { return f.forDur > 0 }

// acceptHook is the accept feature's hook, or why there is none.
func acceptHook(tr *tracer.Tracer) tracer.HookStatus {
	for _, h := range tr.Hooks() {
		if h.Feature == tracer.FeatureAccept {
			return h
		}
	}
	return tracer.HookStatus{Feature: tracer.FeatureAccept}
}
