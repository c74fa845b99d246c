package backlog

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/churn"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/tracer"
)

// benchModeEnv makes the test binary a tracer process for BenchmarkChurnCost
// instead of running tests: "plain" reads and decodes every event, "backlog"
// also accounts them (tracer.Options.Backlog and Run, 1 s reports, the
// CLI's default), "queue-events" reads the events of Options.Backlog with
// no accounting (SOCKLIFE_BENCH_SPLIT=1 adds it).
const (
	benchModeEnv = "SOCKLIFE_BACKLOG_BENCH_MODE"
	benchPortEnv = "SOCKLIFE_BACKLOG_BENCH_PORT"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(benchModeEnv); mode != "" {
		if err := benchTracer(mode); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func benchTracer(mode string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// the churn's port only: the machine is shared, and other traffic
	// would be charged per connection of ours
	port, err := strconv.ParseUint(os.Getenv(benchPortEnv), 10, 16)
	if err != nil {
		return fmt.Errorf("%s: %w", benchPortEnv, err)
	}
	var ports []uint16
	if port != 0 {
		ports = []uint16{uint16(port)}
	}
	tr, err := tracer.New(tracer.Options{Backlog: mode != "plain", Ports: ports})
	if err != nil {
		return err
	}
	defer tr.Close()
	if path := os.Getenv("SOCKLIFE_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path + "." + mode)
		if err != nil {
			return err
		}
		runtime.SetCPUProfileRate(1000)
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var events int
	count := func(*tracer.Event) error { events++; return nil }
	// Ready once start-up is over (for backlog: the first report, after
	// the baseline dump and the /proc scan for listeners' owners), with
	// the CPU used so far, so that only the steady state is charged.
	var once sync.Once
	ready := func() { once.Do(func() { fmt.Printf("ready %d\n", selfCPU()) }) }
	if mode == "backlog" {
		err = Run(ctx, tr, Config{Interval: time.Second}, func(*Report) error { ready(); return nil }, func(*tracer.Event) { events++ })
	} else {
		ready()
		err = tr.Read(ctx, count)
	}
	fmt.Printf("events %d lost %d\n", events, tr.Lost())
	return err
}

type costSample struct {
	cpu  time.Duration // the tracer process's user+sys from ready to exit
	bpf  time.Duration // its programs' run time over the churn
	rate float64
	// events per connection: the same in both modes, or they did not
	// trace the same thing
	events float64
}

// BenchmarkChurnCost measures what backlog accounting adds to a tracer
// under the loopback churn (connect, a byte each way, close, as fast as it
// goes): the same events read by a process that only decodes them and by
// one that also runs the accounting, interleaved round after round. It logs
// medians per connection and their ratio:
//
//	go test -v -run '^$' -bench ChurnCost -benchtime 1x ./internal/backlog
func BenchmarkChurnCost(b *testing.B) {
	testutil.RequireRoot(b)
	conns, rounds := testutil.EnvInt(b, "SOCKLIFE_BENCH_CHURN_CONNS", 60000), 7
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enabling BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	gen, err := churn.New(churn.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer gen.Close()
	modes := []string{"plain", "backlog"}
	if os.Getenv("SOCKLIFE_BENCH_SPLIT") == "1" {
		// the BPF side of backlog accounting alone: enqueue events filled
		modes = append(modes, "queue-events")
	}
	samples := map[string][]costSample{}
	for b.Loop() {
		for round := range rounds {
			for i := range modes {
				mode := modes[(round+i)%len(modes)]
				samples[mode] = append(samples[mode], churnUnder(b, gen, mode, conns))
			}
		}
	}
	med := func(mode string, f func(costSample) float64) float64 {
		v := make([]float64, 0, len(samples[mode]))
		for _, s := range samples[mode] {
			v = append(v, f(s))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	perConn := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(conns) }
	for _, mode := range modes {
		b.Logf("%-8s tracer CPU %6.0f ns/conn, BPF %6.0f ns/conn, %4.1f events/conn, churn %6.0f conn/s (medians of %d)", mode,
			med(mode, func(s costSample) float64 { return perConn(s.cpu) }),
			med(mode, func(s costSample) float64 { return perConn(s.bpf) }),
			med(mode, func(s costSample) float64 { return s.events }),
			med(mode, func(s costSample) float64 { return s.rate }), len(samples[mode]))
	}
	cpu := med("backlog", func(s costSample) float64 { return perConn(s.cpu) }) / med("plain", func(s costSample) float64 { return perConn(s.cpu) })
	total := med("backlog", func(s costSample) float64 { return perConn(s.cpu + s.bpf) }) / med("plain", func(s costSample) float64 { return perConn(s.cpu + s.bpf) })
	b.Logf("backlog/plain: tracer CPU %.3f, tracer CPU + BPF %.3f", cpu, total)
	b.ReportMetric(cpu, "cpu-ratio")
	b.ReportMetric(total, "cpu+bpf-ratio")
}

// churnUnder runs the churn once with a tracer process in mode attached.
func churnUnder(b *testing.B, gen *churn.Generator, mode string, conns int) costSample {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), benchModeEnv+"="+mode, fmt.Sprintf("%s=%d", benchPortEnv, gen.Port()))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewReader(out)
	l, err := lines.ReadString('\n')
	ns, ok := strings.CutPrefix(strings.TrimSpace(l), "ready ")
	cpu0, perr := strconv.ParseInt(ns, 10, 64)
	if err != nil || !ok || perr != nil {
		b.Fatalf("%s tracer: %q, %v", mode, l, err)
	}
	pid := cmd.Process.Pid
	bpf0 := progTime(b, pid)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := gen.Run(ctx, conns)
	if err != nil {
		b.Fatal(err)
	}
	// caught up: its CPU time stops moving for 200 ms
	last, since := procCPU(b, pid), time.Now()
	testutil.WaitFor(b, time.Minute, "the tracer to drain", func() bool {
		if now := procCPU(b, pid); now != last {
			last, since = now, time.Now()
		}
		return time.Since(since) >= 200*time.Millisecond
	})
	bpf := progTime(b, pid) - bpf0
	cmd.Process.Signal(os.Interrupt)
	tail, _ := io.ReadAll(lines)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%s tracer: %v", mode, err)
	}
	var events, lost int
	if _, err := fmt.Sscanf(string(tail), "events %d lost %d", &events, &lost); err != nil || lost != 0 {
		b.Errorf("%s tracer: %q: want no event lost", mode, tail)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime) - cpu0)
	return costSample{cpu: cpu, bpf: bpf, rate: res.Rate(), events: float64(events) / float64(conns)}
}

// selfCPU is this process's user+sys time in nanoseconds.
func selfCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)
}

// procCPU is pid's user+sys time from /proc/PID/stat.
func procCPU(tb testing.TB, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// fields after the ")" of comm: utime and stime are the 12th and 13th
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
}

// progTime sums the run time of the BPF programs pid holds (bpf_stats),
// each once: a program's fd and its link's both name it.
func progTime(tb testing.TB, pid int) time.Duration {
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
	if err != nil {
		tb.Fatal(err)
	}
	var total time.Duration
	seen := map[uint64]bool{}
	for _, fd := range fds {
		raw, err := os.ReadFile(fd)
		if err != nil {
			continue
		}
		_, rest, ok := strings.Cut(string(raw), "prog_id:\t")
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(strings.Fields(rest)[0], 10, 32)
		if err != nil || seen[id] {
			continue
		}
		seen[id] = true
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			continue
		}
		if st, err := p.Stats(); err == nil {
			total += st.Runtime
		}
		p.Close()
	}
	return total
}
