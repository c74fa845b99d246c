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
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
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
	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/runner"
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
	topts.Backlog, topts.Aggregate = true, true
	topts.AcceptHooks = acceptWaitModes[f.acceptWait]
	topts.Logger = log
	// The ring carries only listeners' starts and ends, and each
	// collection reads what it holds first (collect): a reader woken
	// every few ms to find nothing cost serve 1.3% of a core at rest.
	topts.FlushInterval = serveFlushInterval
	f.tracerFlags.apply(&topts)
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	tr, err := startTracer(followCtx, topts, flt)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer tr.Close()
	defer stopFollow() // before Close: the follower adds to the tracer's map
	older, err := seedOlder(ctx, tr, flt, log)
	if err != nil {
		return err
	}
	poller, err := backlog.NewPoller(ctx, backlog.Config{Stall: f.stall, Keep: flt.Match, AllNetns: true,
		Containers: names.Containers, KeepContainer: flt.Container, ListenerAccepts: tr.ListenerAccepts},
		tr.SeedListeners, tr.Loss)
	if err != nil {
		return err
	}
	// The ring carries only what the backlog accounting reads (Aggregate).
	run := runner.Start(tr, runner.Consumer{Event: func(ev *tracer.Event) error { poller.Observe(ev); return nil }})
	defer run.Close()
	reg, stopHolders := startHolders(ctx, log)
	defer stopHolders()
	src := &serveSource{tr: tr, run: run, poller: poller, names: names, flt: flt, holders: reg, maxProcesses: f.maxProcesses,
		listeners: topview.NewSampler(0, closewait.ByProcess), closeWaits: closewait.NewWatch(time.Minute),
		older: older, tool: toolInfo(tr)}
	if src.census, err = tr.NewCensus(); err != nil {
		log.Warn("counting TCP states from a dump of every socket (slower), and CLOSE_WAIT sockets without their owners and ages: " + err.Error())
	} else {
		defer src.census.Close()
	}
	// A filter on addresses or ports counts only the sockets it keeps:
	// that takes the dump of every socket the iterator spares.
	src.censusStates = src.census != nil && flt.WholeNamespaces()
	src.tool.Hooks = append(src.tool.Hooks, exporter.Hook{Feature: "states", Hook: statesHook(src.censusStates)})
	return serveHTTP(ctx, f, exporter.NewCollector(src.collect, f.collectInterval), run, log)
}

// serveFlushInterval is how long a listener's start or end may wait in
// the ring when no collection asks for it first.
const serveFlushInterval = time.Second

// seedOlder tells the tracer the owners of the sockets older than it, so
// that one entering CLOSE_WAIT later names its owner, and returns those
// already in CLOSE_WAIT, which the programs never see enter it.
//
// Only listeners and CLOSE_WAIT sockets are kept whole; of the rest (a
// node may hold a million) the dump keeps a holders.Brief, as many as the
// BPF side keeps seeds (tracer.MaxOwnerSeeds), and one /proc scan finds
// their owners: serve's memory at start-up must stay within the
// DaemonSet's limit, whatever the node holds.
func seedOlder(ctx context.Context, tr *tracer.Tracer, flt *filter.Filter, log *slog.Logger) (map[closeWaitKey]socketCloseWait, error) {
	var mu sync.Mutex
	var briefs []holders.Brief
	maxBriefs, unseeded := tr.MaxOwnerSeeds(), 0
	res, err := snapshot.Dump(ctx, snapshot.Options{TCP: true, AllNetns: true, Keep: func(s *snapshot.Socket) bool {
		if s.State == tcpstate.Listen || s.State == tcpstate.CloseWait {
			return true
		}
		if s.Inode != 0 && s.Cookie != 0 {
			mu.Lock()
			if len(briefs) < maxBriefs {
				briefs = append(briefs, holders.Brief{Inode: s.Inode, Cookie: s.Cookie, CgroupID: s.CgroupID})
			} else {
				unseeded++
			}
			mu.Unlock()
		}
		return false
	}})
	if err != nil {
		return nil, fmt.Errorf("taking the socket snapshot: %w", err)
	}
	if unseeded > 0 {
		// what such a socket loses: the owner of its entry into CLOSE_WAIT
		// if the peer's FIN comes first (softirq); its owner's own calls
		// still name it
		log.Warn(fmt.Sprintf("the owners of %d sockets older than serve are not seeded: the BPF side keeps %d", unseeded, maxBriefs))
	}
	found := time.Now()
	socks := res.Sockets
	inodes := make([]uint64, 0, len(briefs)+len(socks))
	for _, b := range briefs {
		inodes = append(inodes, b.Inode)
	}
	for i := range socks {
		inodes = append(inodes, socks[i].Inode)
	}
	slices.Sort(inodes)
	owners, _, err := snapshot.ScanSocketOwners(func(inode uint64) bool {
		_, ok := slices.BinarySearch(inodes, inode)
		return ok
	})
	if err != nil {
		return nil, fmt.Errorf("finding socket owners: %w", err)
	}
	holders.SortOwners(owners)
	for i := range socks {
		socks[i].Processes = holders.Processes(owners, socks[i].Inode)
	}
	// as the live table's tracker does: a seed that does not take leaves
	// those sockets' owners unknown, no reason to stop
	listeners, seeds := holders.Seeds(socks)
	seeds = append(seeds, holders.OwnerSeeds(briefs, owners)...)
	if err := errors.Join(tr.SeedListeners(listeners), tr.SeedOwners(seeds)); err != nil {
		log.Debug("seeding the owners of older sockets", "error", err)
	}
	older := map[closeWaitKey]socketCloseWait{}
	for i := range socks {
		s := &socks[i]
		if s.State != tcpstate.CloseWait || !flt.Unowned().Socket(s) {
			continue
		}
		c := socketCloseWait{Conn: closewait.Conn{Local: s.Local, Remote: s.Remote, AtLeast: found}, netns: s.Netns, sockCgroup: s.CgroupID}
		if len(s.Processes) > 0 {
			c.PID, c.Comm = uint32(s.Processes[0].PID), s.Processes[0].Comm
		}
		older[cwKey(s.Netns, s.Local, s.Remote)] = c
	}
	return older, nil
}

// serveHTTP serves / and /metrics until ctx ends, or the event reader stops
// (then the metrics would go stale: better no target than a wrong one).
func serveHTTP(ctx context.Context, f *serveFlags, c *exporter.Collector, run *runner.Runner, log *slog.Logger) error {
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
	case <-run.Done():
		if err := run.Err(); err != nil {
			return fmt.Errorf("reading events: %w", err)
		}
		return errors.New("tracer closed while serving")
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

// serveSource makes one collection: what the kernel counted (connections
// per namespace), the census (per namespace, the sockets by state and
// those in CLOSE_WAIT with their owners and ages), and the backlog
// accounting's report, whose poll dumps the listeners. Without the census,
// one dump of every socket does its part.
type serveSource struct {
	tr     *tracer.Tracer
	run    *runner.Runner
	poller *backlog.Poller
	// census counts each namespace's sockets by state in the kernel and
	// names those in CLOSE_WAIT; nil: a dump decodes every socket
	census *tracer.Census
	// censusStates says the census's counts are the states': false when
	// a filter on addresses or ports needs a dump
	censusStates bool
	listeners    *topview.Sampler
	closeWaits   *closewait.Watch
	names        *render.Names
	flt          *filter.Filter
	holders      *holders.Registry
	maxProcesses int
	// older are the sockets in CLOSE_WAIT the programs did not see enter
	// it (at start, or found later), until a collection no longer finds
	// them there
	older map[closeWaitKey]socketCloseWait
	tool  exporter.Tool
}

func (s *serveSource) collect(ctx context.Context) (exporter.Model, error) {
	keep := s.flt.Unowned().Socket
	var states map[uint32][tcpstate.Max]int
	var found []tracer.CloseWait
	var err error
	if s.census != nil {
		// the iterator counts and names the sockets in CLOSE_WAIT
		if states, found, err = s.takeCensus(); err != nil {
			return exporter.Model{}, err
		}
	}
	if !s.censusStates {
		var dumped []tracer.CloseWait
		if states, dumped, err = dumpStates(ctx, keep); err != nil {
			return exporter.Model{}, err
		}
		if s.census == nil {
			found = dumped
		}
	}
	// the listeners' starts and ends the ring holds, before the poll
	s.run.CatchUp(ctx, serveFlushInterval)
	now := time.Now()
	// the backlog poll dumps the listening hash: its listeners are the
	// frame's too
	rep, err := s.poller.Report(ctx, now)
	if err != nil {
		return exporter.Model{}, err
	}
	var listening []snapshot.Socket
	for i := range rep.Listening {
		if keep(&rep.Listening[i]) {
			listening = append(listening, rep.Listening[i])
		}
	}
	conns := s.closeWaitConns(now, found)
	frame := topview.Frame{
		CloseWait: s.closeWaits.Observe(now, conns),
		Listeners: s.listeners.ListenersOf(topview.Input{At: now, Listening: listening, Keep: s.flt.Match, Holders: s.holders,
			Containers: s.names.Containers, KeepContainer: s.flt.Container}),
	}
	totals, err := s.tr.ConnTotals()
	if err != nil {
		return exporter.Model{}, err
	}
	tool := s.tool
	tool.Loss = s.tr.Loss()
	return exporter.Build(exporter.Inputs{Frame: &frame, Backlog: rep, States: states, Totals: totals,
		NetnsName: s.names.NetnsName, FDs: exporter.ProcFDs("/proc"), MaxProcesses: s.maxProcesses, Tool: tool}), nil
}

// takeCensus counts every namespace's TCP sockets by state with the
// iterator (those --netns keeps) and names the ones in CLOSE_WAIT. A
// namespace without any is left out, as a dump would leave it.
func (s *serveSource) takeCensus() (map[uint32][tcpstate.Max]int, []tracer.CloseWait, error) {
	states := map[uint32][tcpstate.Max]int{}
	var waiting []tracer.CloseWait
	_, err := snapshot.EachNetns(func(inode uint32) error {
		if s.flt.Netns != 0 && inode != s.flt.Netns {
			return nil
		}
		tally, err := s.census.Take()
		if err != nil {
			return err
		}
		if tally.States != ([tcpstate.Max]int{}) {
			states[inode] = tally.States
		}
		waiting = append(waiting, tally.CloseWait...)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("counting TCP sockets by state: %w", err)
	}
	return states, waiting, nil
}

// dumpStates is takeCensus from one dump that decodes every socket keep
// keeps (a kernel without the iterator, a filter on addresses or ports):
// it counts them all and keeps only the CLOSE_WAIT sockets, so memory
// follows those, not the host's sockets. A dump knows neither when a
// socket entered CLOSE_WAIT nor who acted on it last.
func dumpStates(ctx context.Context, keep func(*snapshot.Socket) bool) (map[uint32][tcpstate.Max]int, []tracer.CloseWait, error) {
	var mu sync.Mutex
	states := map[uint32][tcpstate.Max]int{}
	res, err := snapshot.Dump(ctx, snapshot.Options{TCP: true, AllNetns: true, Keep: func(sk *snapshot.Socket) bool {
		if !keep(sk) {
			return false
		}
		mu.Lock()
		exporter.CountState(states, sk)
		mu.Unlock()
		return sk.State == tcpstate.CloseWait
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("listing TCP sockets: %w", err)
	}
	waiting := make([]tracer.CloseWait, 0, len(res.Sockets))
	for i := range res.Sockets {
		sk := &res.Sockets[i]
		waiting = append(waiting, tracer.CloseWait{Netns: sk.Netns, Local: sk.Local, Remote: sk.Remote, SockCgroupID: sk.CgroupID})
	}
	return states, waiting, nil
}

// statesHook is socklife_hook_info's hook for the states: the iterator,
// or the dump that decodes every socket.
func statesHook(census bool) string {
	if !census {
		return "sock_diag"
	}
	return "iter/tcp"
}

type closeWaitKey struct {
	netns         uint32
	local, remote netip.AddrPort
}

// closeWaitConns are the sockets in CLOSE_WAIT the filters keep, of
// those found now; older follows them (joinCloseWaits).
func (s *serveSource) closeWaitConns(now time.Time, found []tracer.CloseWait) []closewait.Conn {
	var joined []socketCloseWait
	joined, s.older = joinCloseWaits(now, found, s.older)
	var out []closewait.Conn
	for _, j := range joined {
		c := j.Conn
		var owners []tracer.Holder
		if c.PID != 0 {
			owners = []tracer.Holder{{PID: c.PID, Comm: c.Comm}}
		}
		c.Container, c.InContainer = s.names.Containers.OfSocket(j.sockCgroup, j.ownerCgroup)
		if s.flt.Container(c.Container, c.InContainer) && s.flt.Match(j.netns, c.Local, c.Remote, owners...) {
			out = append(out, c)
		}
	}
	return out
}

// socketCloseWait is a socket in CLOSE_WAIT and what names its container
// (an older one, found at start, has no owner cgroup).
type socketCloseWait struct {
	closewait.Conn
	netns                   uint32
	sockCgroup, ownerCgroup uint64
}

// joinCloseWaits says what is known of each socket found in CLOSE_WAIT
// now. One the programs saw enter it has its since and owner from the
// kernel. One they did not (it did before serve started, or the kernel
// skipped the run) is an older one: its age counts from when serve first
// found it, a lower bound, and its owner is the one named then (the
// start-up snapshot's holder, or the kernel's if it knew one). older
// comes back as the older ones still there, those found this time
// included; the rest are gone for good.
func joinCloseWaits(now time.Time, found []tracer.CloseWait, older map[closeWaitKey]socketCloseWait) (joined []socketCloseWait, stillOlder map[closeWaitKey]socketCloseWait) {
	stillOlder = map[closeWaitKey]socketCloseWait{}
	for _, cw := range found {
		j := socketCloseWait{Conn: closewait.Conn{Local: cw.Local, Remote: cw.Remote, Since: cw.Since},
			netns: cw.Netns, sockCgroup: cw.SockCgroupID}
		if cw.OwnerSource != tracer.OwnerUnknown {
			j.PID, j.Comm, j.ownerCgroup = cw.Owner.PID, cw.Owner.Comm, cw.Owner.CgroupID
		}
		if cw.Since.IsZero() {
			k := cwKey(cw.Netns, cw.Local, cw.Remote)
			if o, ok := older[k]; ok {
				j = o
			} else {
				j.AtLeast = now
			}
			stillOlder[k] = j
		}
		joined = append(joined, j)
	}
	return joined, stillOlder
}

// cwKey names a socket by its addresses as both the census and a dump
// give them: an IPv6 socket talking IPv4 comes v4-mapped from the dump and
// unmapped from the census.
func cwKey(netns uint32, local, remote netip.AddrPort) closeWaitKey {
	unmap := func(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
	return closeWaitKey{netns, unmap(local), unmap(remote)}
}

// toolInfo is what socklife_build_info and socklife_hook_info say.
func toolInfo(tr *tracer.Tracer) exporter.Tool {
	t := exporter.Tool{Version: Version, GoVersion: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		t.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	for _, h := range tr.Hooks() {
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
