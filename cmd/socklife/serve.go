package main

// serve.go: `socklife serve`, the Prometheus exporter: it wires the live
// table, the backlog accounting and the names into internal/exporter and
// serves them through exporter-toolkit.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/backlog"
	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/internal/exporter"
	"github.com/socklife/socklife/internal/filter"
	"github.com/socklife/socklife/internal/holders"
	"github.com/socklife/socklife/internal/live"
	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/topview"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// defaultListenAddress: 9931 is free in Prometheus's default port
// allocations (github.com/prometheus/prometheus/wiki/Default-port-allocations),
// on loopback so that nothing is exposed until asked for.
const defaultListenAddress = "127.0.0.1:9931"

type serveFlags struct {
	listen          []string
	webConfig       string
	collectInterval time.Duration
	stall           time.Duration
	maxProcesses    int
	acceptWait      string
	filter          filter.Flags
	tracerFlags
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve [flags] [FILTER...]",
		Short: "Export Prometheus metrics: CLOSE_WAIT per process, accept queues per listener, TCP states per namespace",
		Long: `Serve /metrics in the Prometheus text format, for as long as it runs: per
listener the accept queue, drops, SYN-ACK retransmits, accepts, an
accept-wait histogram and stalls; per process holding CLOSE_WAIT sockets or
a listener the CLOSE_WAIT count and age, open fds and the fd limit; per
network namespace the TCP states, connections opened and closed, failed
connects and the TcpExt listen and SYN-cookie counters; and socklife's own
lost events and hooks. docs/metrics.md lists every metric.

Values are computed at scrape time from one collection; scrapes within
--collect-interval of it (or while it runs) share it, so Prometheus pairs
and curious users do not multiply the work. Processes past --max-processes
are summed into one pid="other" series.

It listens on loopback unless told otherwise (--web.listen-address), and
takes exporter-toolkit's --web.config.file for TLS and basic auth, as
node_exporter does. SIGTERM or SIGINT stops it (exit 0).`,
		Example: `  socklife serve
  socklife serve --web.listen-address :9931 --web.config.file /etc/socklife/web.yml
  socklife serve --port 443,8080`,
		Args: cobra.ArbitraryArgs, // an ss FILTER
		RunE: func(cmd *cobra.Command, args []string) error { f.filter.SetExpr(args); return runServe(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.listen, "web.listen-address", []string{defaultListenAddress}, "address to serve on (repeatable); :9931 for every interface")
	fl.StringVar(&f.webConfig, "web.config.file", "", "exporter-toolkit web configuration (TLS, basic auth)")
	fl.DurationVar(&f.collectInterval, "collect-interval", time.Second, "scrapes within this long of a collection share it")
	fl.DurationVar(&f.stall, "stall", time.Second, "a listener with a non-empty queue and no accept() for longer than this is stalled")
	fl.IntVar(&f.maxProcesses, "max-processes", 1000, "process series at most; the rest are summed into pid=\"other\"")
	fl.StringVar(&f.acceptWait, "accept-wait", "auto", "accepts, accept waits and stalls: auto (where a hook costs per accept() only: not on a syscall tracepoint, which slows every syscall), on, off")
	f.filter.Register(fl, "")
	f.tracerFlags.register(fl)
	return cmd
}

// acceptWaitModes are --accept-wait's values. auto leaves the accept hook
// off where only its syscall tracepoint rung attaches (this development
// machine's kernel, without kprobes and fexit): an enabled syscall
// tracepoint flags every task, and all their syscalls then take the slow
// path, a price an always-on agent must not pay by default.
var acceptWaitModes = map[string]tracer.AcceptHooks{"auto": tracer.AcceptPerCall, "on": tracer.AcceptAny, "off": tracer.AcceptOff}

// serveAcceptDefault says what --accept-wait auto does on a kernel whose
// accept ladder, tried whole, gave h.
func serveAcceptDefault(h tracer.HookStatus) string {
	switch {
	case !h.Attached():
		return "unavailable (no accept hook on this kernel)"
	case h.Hook == tracer.HookSyscallTracepoint:
		return "off unless --accept-wait on (the only accept hook here is a syscall tracepoint, which slows every syscall on the host)"
	}
	return "on (" + h.Hook.String() + ")"
}

// check refuses bad input before anything is attached.
func (f *serveFlags) check() (*filter.Filter, error) {
	flt, err := parseFilter(&f.filter)
	if err != nil {
		return nil, err
	}
	if err := f.tracerFlags.check(); err != nil {
		return nil, err
	}
	if f.collectInterval < 0 || f.stall < time.Millisecond || f.maxProcesses < 1 {
		return nil, badInput("--collect-interval %v, --stall %v, --max-processes %d: want >= 0, >= 1ms, >= 1", f.collectInterval, f.stall, f.maxProcesses)
	}
	if _, ok := acceptWaitModes[f.acceptWait]; !ok {
		return nil, badInput("--accept-wait %q: want auto, on or off", f.acceptWait)
	}
	if err := web.Validate(f.webConfig); err != nil {
		// YAML errors span lines: one line, as every error here
		return nil, badInput("--web.config.file %s: %s", f.webConfig, strings.Join(strings.Fields(err.Error()), " "))
	}
	return flt, nil
}

func runServe(cmd *cobra.Command, f *serveFlags) error {
	flt, err := f.check()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	log := stderrLogger(cmd.ErrOrStderr(), f.debug)
	names, err := newNames(flt)
	if err != nil {
		return err
	}
	topts, _ := flt.Split(false)
	topts.Backlog = true
	topts.AcceptHooks = acceptWaitModes[f.acceptWait]
	f.tracerFlags.apply(&topts)
	follow := kernelCgroups(&topts, flt)
	// The backlog accounting reads the live table's events: one tracer.
	// Events before its baseline poll are in that poll.
	var accounting atomic.Pointer[backlog.Poller]
	tk, err := live.Start(ctx, live.Options{Tracer: topts, Keep: flt.Unowned().Socket, Logger: log,
		OnEvent: func(ev *tracer.Event) {
			if p := accounting.Load(); p != nil {
				p.Observe(ev)
			}
		}})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer tk.Close()
	poller, err := backlog.NewPoller(ctx, backlog.Config{Stall: f.stall, Keep: flt.Match, AllNetns: true,
		Containers: names.Containers, KeepContainer: flt.Container}, tk.SeedListeners, func() tracer.Loss { return tk.Stats().Loss })
	if err != nil {
		return err
	}
	accounting.Store(poller)
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	go follow(followCtx, tk.AddCgroups)
	reg, stopHolders := startHolders(ctx, log)
	defer stopHolders()
	src := &serveSource{tk: tk, poller: poller, names: names, flt: flt, holders: reg, maxProcesses: f.maxProcesses,
		sampler: topview.NewSampler(time.Minute, closewait.ByProcess), tool: toolInfo(tk)}
	return serveHTTP(ctx, f, exporter.NewCollector(src.collect, f.collectInterval), tk, log)
}

// serveHTTP serves / and /metrics until ctx ends, or the tracker stops
// (then the metrics would go stale: better no target than a wrong one).
func serveHTTP(ctx context.Context, f *serveFlags, c *exporter.Collector, tk *live.Tracker, log *slog.Logger) error {
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(c)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(promReg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "socklife",
		Description: "socklife serve: TCP socket lifecycle metrics (CLOSE_WAIT per process, accept queues per listener, states per network namespace)",
		Version:     versionLine(),
		Links:       []web.LandingLinks{{Address: "/metrics", Text: "Metrics"}},
	})
	if err != nil {
		return err
	}
	mux.Handle("/", landing)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := writeReadyFile(f.readyFile); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() {
		served <- web.ListenAndServe(srv, &web.FlagConfig{WebListenAddresses: &f.listen, WebConfigFile: &f.webConfig}, log)
	}()
	select {
	case err := <-served:
		return fmt.Errorf("serving metrics: %w", err)
	case <-tk.Done():
		if err := tk.Err(); err != nil {
			return err
		}
	case <-ctx.Done():
	}
	// within a second of SIGTERM: a scrape in flight gets half of it
	sctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// serveSource makes one collection.
type serveSource struct {
	tk           *live.Tracker
	poller       *backlog.Poller
	sampler      *topview.Sampler
	names        *render.Names
	flt          *filter.Filter
	holders      *holders.Registry
	maxProcesses int
	tool         exporter.Tool
}

func (s *serveSource) collect(ctx context.Context) (exporter.Model, error) {
	var states map[uint32][tcpstate.Max]int
	var totals map[uint32]live.Totals
	frame, err := sample(ctx, s.tk, s.sampler, topview.Input{Keep: s.flt.Match, Holders: s.holders,
		Containers: s.names.Containers, KeepContainer: s.flt.Container}, func(t *live.Table, dumped []snapshot.Socket) {
		states, totals = exporter.CountStates(t, dumped), t.Totals()
	})
	if err != nil {
		return exporter.Model{}, err
	}
	rep, err := s.poller.Report(ctx, time.Now())
	if err != nil {
		return exporter.Model{}, err
	}
	tool := s.tool
	st := s.tk.Stats()
	tool.Loss, tool.Resyncs = st.Loss, st.Resyncs
	return exporter.Build(exporter.Inputs{Frame: &frame, Backlog: rep, States: states, Totals: totals,
		NetnsName: s.names.NetnsName, FDs: exporter.ProcFDs("/proc"), MaxProcesses: s.maxProcesses, Tool: tool}), nil
}

// toolInfo is what socklife_build_info and socklife_hook_info say.
func toolInfo(tk *live.Tracker) exporter.Tool {
	t := exporter.Tool{Version: Version, GoVersion: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		t.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	for _, h := range tk.Hooks() {
		name := hookName(h, "none")
		if h.LeftOut() {
			name = "off" // --accept-wait
		}
		t.Hooks = append(t.Hooks, exporter.Hook{Feature: string(h.Feature), Hook: name})
		if h.Feature == tracer.FeatureAccept {
			t.AcceptsMeasured = h.Attached()
		}
	}
	return t
}
