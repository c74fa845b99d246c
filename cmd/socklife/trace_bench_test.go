package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/churn"
	"github.com/socklife/socklife/internal/testutil"
)

// What BenchmarkTraceChurn does by default; SOCKLIFE_BENCH_CHURN_CONNS,
// SOCKLIFE_BENCH_ROUNDS and SOCKLIFE_BENCH_TRACERS (a comma list of off,
// socklife, bpftrace) override it for a quick look. SOCKLIFE_BENCH_IN_POD=1
// runs it all (churn and tracers) in a cgroup named as a Kubernetes pod's
// container, so that every event names a container: with
// SOCKLIFE_BENCH_TRACERS=socklife,socklife/--containers=false, what
// container attribution costs per event.
const (
	churnConns  = 30000 // per run: a few seconds of churn with no tracer here
	churnRounds = 5
	// The runs that count events per connection on the churn's port go at
	// a pace every tracer keeps up with: an event lost would spoil the count.
	countConns = 2000
	countRate  = 2000 // connections/s
)

// churnTracer is one configuration the benchmark interleaves.
type churnTracer struct {
	name string
	// start starts the tracer on all traffic, or on port only if not 0,
	// its output to sink, where lines holding mark are counted apart.
	start func(tb testing.TB, dir string, port uint16, sink sinkKind, mark string) *benchTracer
	// events are the events the tracer wrote out and those it says it
	// lost, given what its output held.
	events func(tb testing.TB, p *benchTracer, out outputCounts) (written, lost int64)
	// portMark is in every output line about a connection on port, and in
	// no other: other traffic on the host is traced too.
	portMark func(port uint16) string
}

// churnSample is one run of the churn under one configuration.
type churnSample struct {
	rate    float64 // connections per second
	elapsed time.Duration
	written int64 // all events written out
	ours    int64 // those about the churn's connections
	lost    int64
	cpu     time.Duration // the tracer's user+sys from ready to exit
	bpf     []progRun     // its programs' run time over the same span
}

// BenchmarkTraceChurn measures what tracing costs a host that opens and
// closes connections as fast as it can: a loopback churn of a fixed count of
// connections (connect, one byte each way, close) with no tracer, under
// `socklife trace -o json`, and under bpftrace running the equivalent
// tcpstates one-liner, the three interleaved round after round so they
// share the machine's noise. Tracers write into a pipe to a reader that
// counts their lines (SOCKLIFE_BENCH_SINK=file: a tmpfs file; see sinkKind).
// Run it once (-v, or go test cuts the logged table to ten lines):
//
//	go test -v -run '^$' -bench TraceChurn -benchtime 1x ./cmd/socklife
//
// It reports medians: each configuration's churn rate and its ratio to the
// no-tracer rate of the same round, the events each tracer kept up with and
// lost, the tracer process's CPU per event and BPF run time per program
// run (bpf_stats), and logs a table for the README.
func BenchmarkTraceChurn(b *testing.B) {
	testutil.RequireRoot(b)
	if testutil.EnvInt(b, "SOCKLIFE_BENCH_IN_POD", 0) == 1 {
		dir, _ := testutil.Cgroup(b, fmt.Sprintf("/socklife-bench-%d/kubepods.slice/kubepods-burstable.slice/"+
			"kubepods-burstable-pod0b5a1c2e_1111_4222_8333_944455556666.slice/cri-containerd-%064x.scope", os.Getpid(), 1))
		testutil.InCgroup(b, dir, func() { traceChurn(b) })
		return
	}
	traceChurn(b)
}

func traceChurn(b *testing.B) {
	conns, rounds := testutil.EnvInt(b, "SOCKLIFE_BENCH_CHURN_CONNS", churnConns), testutil.EnvInt(b, "SOCKLIFE_BENCH_ROUNDS", churnRounds)
	tracers := churnTracers(b)
	if on, _ := os.ReadFile("/proc/sys/kernel/bpf_stats_enabled"); strings.TrimSpace(string(on)) == "1" {
		b.Logf("kernel.bpf_stats_enabled is 1: every round pays for BPF statistics (sysctl -w kernel.bpf_stats_enabled=0)")
	}
	gen, err := churn.New(churn.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { gen.Close() })
	dir := benchOutDir(b)

	perConn := countPerConn(b, tracers[1:], dir)
	sink := benchSink(b)

	samples := interleaveChurn(b, gen, tracers, dir, conns, rounds, sink)
	reportChurn(b, conns, sink, tracers, samples, perConn, progCosts(b, gen, tracers[1:], dir, conns, sink))
}

// progCosts runs the churn once more under each tracer with the kernel's
// BPF run-time statistics on, for each program's cost per run. Not in the
// rounds above: the statistics cost two clock reads per program run, which
// the rates should not pay.
func progCosts(tb testing.TB, gen *churn.Generator, tracers []churnTracer, dir string, conns int, sink sinkKind) map[string][]progRun {
	tb.Helper()
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		tb.Fatalf("enabling BPF run-time statistics: %v", err)
	}
	defer stats.Close() // the kernel turns them off with the last holder
	out := map[string][]progRun{}
	for _, tr := range tracers {
		out[tr.name] = churnOnce(tb, gen, tr, dir, conns, sink).bpf
	}
	return out
}

// countPerConn counts each tracer's events per connection on the port of a
// paced churn alone, so that the unfiltered runs know how many to expect.
// It counts what a second run adds to the output of a first: events of the
// first run's start-up (listeners, accept() calls already blocked when the
// tracer attached) cancel out, and the difference is exact. Output goes
// to a file here, which can be counted between the runs.
func countPerConn(tb testing.TB, tracers []churnTracer, dir string) map[string]int64 {
	tb.Helper()
	gen, err := churn.New(churn.Config{Rate: countRate})
	if err != nil {
		tb.Fatal(err)
	}
	defer gen.Close()
	perConn := map[string]int64{}
	for _, tr := range tracers {
		p := tr.start(tb, dir, gen.Port(), sinkFile, "")
		var lines [2]int64
		for i, n := range []int{countConns / 4, countConns} {
			churnRun(tb, gen, n, tr.name)
			p.waitIdle(tb)
			lines[i] = p.output(tb).lines
		}
		p.stop(tb)
		written, lost := tr.events(tb, p, p.output(tb))
		added := lines[1] - lines[0]
		if lost != 0 || added%countConns != 0 || written != lines[1] {
			tb.Fatalf("%s on port %d: %d connections added %d events; %d written in all, %d lost: want a whole number per connection and none lost",
				tr.name, gen.Port(), countConns, added, written, lost)
		}
		perConn[tr.name] = added / countConns
		if first := int64(countConns / 4); lines[0] != first*perConn[tr.name] {
			tb.Logf("%s: %d events for the first %d connections, %+d from %d per connection: start-up (listeners, calls in flight at attach)",
				tr.name, lines[0], first, lines[0]-first*perConn[tr.name], perConn[tr.name])
		}
	}
	return perConn
}

// interleaveChurn runs the churn under each tracer, rounds times, the order
// rotating every round so that none always runs first or after the same
// one: samples[name][round].
func interleaveChurn(b *testing.B, gen *churn.Generator, tracers []churnTracer, dir string, conns, rounds int, sink sinkKind) map[string][]churnSample {
	samples := map[string][]churnSample{}
	for b.Loop() {
		for round := range rounds {
			for i := range tracers {
				tr := tracers[(round+i)%len(tracers)]
				samples[tr.name] = append(samples[tr.name], churnOnce(b, gen, tr, dir, conns, sink))
			}
		}
	}
	return samples
}

func churnRun(tb testing.TB, gen *churn.Generator, conns int, what string) churn.Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := gen.Run(ctx, conns)
	if err != nil {
		tb.Fatalf("churn under %s: %v", what, err)
	}
	return res
}

// churnOnce runs the churn once under tr (nil start: no tracer).
func churnOnce(tb testing.TB, gen *churn.Generator, tr churnTracer, dir string, conns int, sink sinkKind) churnSample {
	tb.Helper()
	var p *benchTracer
	if tr.start != nil {
		p = tr.start(tb, dir, 0, sink, tr.portMark(gen.Port()))
	}
	res := churnRun(tb, gen, conns, tr.name)
	s := churnSample{rate: res.Rate(), elapsed: res.Elapsed}
	if p != nil {
		p.waitIdle(tb)
		s.cpu, s.bpf = p.stop(tb)
		out := p.output(tb)
		s.written, s.lost = tr.events(tb, p, out)
		s.ours = out.marked
	}
	return s
}

// churnTracers are the configurations to compare, "off" first: the others'
// rates are taken relative to it.
func churnTracers(tb testing.TB) []churnTracer {
	tb.Helper()
	want := []string{"socklife", "bpftrace"}
	if s := os.Getenv("SOCKLIFE_BENCH_TRACERS"); s != "" {
		want = strings.Split(s, ",")
	}
	out := []churnTracer{{name: "off"}}
	for _, name := range want {
		switch name {
		case "off":
		case "socklife":
			out = append(out, socklifeTracer(tb, name, nil))
		case "bpftrace":
			out = append(out, bpftraceTracer(tb))
		default:
			// socklife/ARG/ARG...: socklife trace with more arguments, to
			// compare hooks or options in the same run.
			if args, ok := strings.CutPrefix(name, "socklife/"); ok {
				out = append(out, socklifeTracer(tb, name, strings.Split(args, "/")))
				continue
			}
			tb.Fatalf("SOCKLIFE_BENCH_TRACERS: unknown tracer %q: want socklife, socklife/ARG/..., bpftrace or off", name)
		}
	}
	return out
}

func socklifeTracer(tb testing.TB, name string, extra []string) churnTracer {
	bin := buildSocklife(tb)
	return churnTracer{
		name: name,
		start: func(tb testing.TB, dir string, port uint16, sink sinkKind, mark string) *benchTracer {
			ready := filepath.Join(dir, "socklife.ready")
			os.Remove(ready)
			argv := append([]string{bin, "trace", "-o", "json", "--ready-file", ready}, extra...)
			if port != 0 {
				argv = append(argv, "--port", strconv.Itoa(int(port)))
			}
			return startBenchTracer(tb, dir, argv, sink, ready, "", mark)
		},
		events:   socklifeEvents,
		portMark: func(port uint16) string { return fmt.Sprintf(`:%d"`, port) }, // "local":"127.0.0.1:PORT"
	}
}

// socklifeSummary is the one line socklife trace prints on stderr at stop.
// A loss's causes follow it in parentheses (render.LossSummary).
var socklifeSummary = regexp.MustCompile(`(?m)^socklife: (\d+) events, (\d+) lost(?: \(.*\))?$`)

func socklifeEvents(tb testing.TB, p *benchTracer, out outputCounts) (written, lost int64) {
	tb.Helper()
	m := socklifeSummary.FindSubmatch(p.stderr.Bytes())
	if m == nil {
		tb.Fatalf("socklife trace printed no %q line at stop; stderr:\n%s", socklifeSummary, p.stderr.Bytes())
	}
	written, _ = strconv.ParseInt(string(m[1]), 10, 64)
	lost, _ = strconv.ParseInt(string(m[2]), 10, 64)
	if out.lines != written {
		tb.Errorf("socklife trace said %d events but wrote %d lines", written, out.lines)
	}
	return written, lost
}

// bpftraceReady is what the script's BEGIN prints: bpftrace runs BEGIN once
// every other probe is attached.
const bpftraceReady = "bench-ready"

func bpftraceTracer(tb testing.TB) churnTracer {
	bin, err := exec.LookPath("bpftrace")
	if err != nil {
		tb.Fatalf("the benchmark compares with bpftrace (apt-get install bpftrace): %v", err)
	}
	mountTracefs(tb)
	return churnTracer{
		name: "bpftrace",
		start: func(tb testing.TB, dir string, port uint16, sink sinkKind, mark string) *benchTracer {
			filter := "args->protocol == 6"
			if port != 0 {
				filter += fmt.Sprintf(" && (args->sport == %d || args->dport == %d)", port, port)
			}
			// tcpstates as a one-liner: time, pid, comm, both ends, states.
			script := fmt.Sprintf(`BEGIN { printf("%s\n"); }
tracepoint:sock:inet_sock_set_state /%s/ {
	printf("%%lld %%d %%s %%s:%%d %%s:%%d %%d %%d\n", nsecs, pid, comm,
		ntop(args->saddr), args->sport, ntop(args->daddr), args->dport, args->oldstate, args->newstate);
}`, bpftraceReady, filter)
			p := startBenchTracer(tb, dir, []string{bin, "-e", script}, sink, "", bpftraceReady, mark)
			p.resignal = true
			return p
		},
		events: func(_ testing.TB, _ *benchTracer, out outputCounts) (written, lost int64) {
			return out.lines, out.lost
		},
		portMark: func(port uint16) string { return fmt.Sprintf(":%d ", port) }, // ADDR:PORT then a space
	}
}

// benchOutDir holds the tracers' output files (the paced counting runs, and
// every run with SOCKLIFE_BENCH_SINK=file), ready files and the sinks'
// counts: tmpfs, not disk writes that would time the disk. A file, unlike
// /dev/null, lets the benchmark count what was written and read bpftrace's
// "Lost N events", which it prints into its output.
func benchOutDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "socklife-bench-")
	if err != nil {
		tb.Logf("no /dev/shm (%v): tracer output goes to the test's temporary directory", err)
		return tb.TempDir()
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
