package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/testutil"
)

// This file holds what BenchmarkTraceChurn needs to watch a tracer process
// from outside: its CPU time, its BPF programs' own run time, and a clean
// stop.

// benchTracer is one running tracer, its output to a pipe or a file.
type benchTracer struct {
	cmd     *exec.Cmd
	out     string // sinkFile: its stdout; sinkPipe: where the sink writes its counts
	mark    string // in every output line about the churn's connections
	sink    *exec.Cmd
	stderr  bytes.Buffer
	exited  chan struct{}
	waitErr error

	// resignal repeats SIGINT every second until the tracer exits:
	// bpftrace 0.17's poll loop leaves only when epoll_wait is interrupted,
	// so a SIGINT that lands while it handles events (other traffic on the
	// host) is noted and never acted on; it then polls forever.
	resignal bool

	cpuAtReady time.Duration
	progs      []ebpf.ProgramID
	atReady    []progRun
}

// progRun is one BPF program's bpf_stats: total run time and runs.
type progRun struct {
	name    string
	runtime time.Duration
	runs    uint64
}

// progDelta is what each program did between two readings of the same list.
func progDelta(now, before []progRun) []progRun {
	out := make([]progRun, len(now))
	for i := range now {
		out[i] = progRun{now[i].name, now[i].runtime - before[i].runtime, now[i].runs - before[i].runs}
	}
	return out
}

// startBenchTracer starts argv with its output to sink and waits until it
// is attached: readyFile exists (if set) and readyLine was written (if
// set). It then notes its CPU time and BPF programs so that start-up costs
// stay out of what the benchmark charges per event. Lines holding mark are
// counted apart.
func startBenchTracer(tb testing.TB, dir string, argv []string, sink sinkKind, readyFile, readyLine, mark string) *benchTracer {
	tb.Helper()
	out, err := os.CreateTemp(dir, "trace-*.out")
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	p := &benchTracer{cmd: exec.Command(argv[0], argv[1:]...), out: out.Name(), mark: mark, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = out, &p.stderr
	if sink == sinkPipe {
		r, w, err := os.Pipe()
		if err != nil {
			tb.Fatal(err)
		}
		self, err := os.Executable()
		if err != nil {
			tb.Fatal(err)
		}
		os.Remove(p.out) // the sink writes it at the end
		p.sink = exec.Command(self)
		p.sink.Env = append(os.Environ(), sinkCountsEnv+"="+p.out, sinkMarkEnv+"="+mark, sinkReadyEnv+"="+readyLine)
		p.sink.Stdin, p.sink.Stderr = r, os.Stderr
		if err := p.sink.Start(); err != nil {
			tb.Fatalf("starting the output sink: %v", err)
		}
		p.cmd.Stdout = w
		defer r.Close()
		defer w.Close() // the tracer holds it: EOF for the sink when it exits
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", argv[0], err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	tb.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if p.sink != nil {
			p.sink.Process.Kill()
			p.sink.Wait()
		}
		os.Remove(p.out)
		os.Remove(p.out + ".ready")
	})
	testutil.WaitFor(tb, 30*time.Second, argv[0]+" to attach", func() bool {
		select {
		case <-p.exited:
			tb.Fatalf("%s exited before it was ready: %v: %s", argv[0], p.waitErr, p.stderr.Bytes())
		default:
		}
		if _, err := os.Stat(readyFile); readyFile != "" && err != nil {
			return false
		}
		switch {
		case readyLine == "":
			return true
		case p.sink != nil:
			_, err := os.Stat(p.out + ".ready")
			return err == nil
		}
		b, _ := os.ReadFile(p.out)
		return bytes.Contains(b, []byte(readyLine+"\n"))
	})
	if p.progs, err = bpfProgsOf(p.cmd.Process.Pid); err != nil {
		tb.Fatal(err)
	}
	if len(p.progs) == 0 {
		tb.Fatalf("%s is ready but holds no BPF program", argv[0])
	}
	p.atReady = p.progStats(tb)
	p.cpuAtReady = p.cpu(tb)
	return p
}

// output counts what the tracer wrote: with a file at any time, with the
// pipe's sink once the tracer has stopped.
func (p *benchTracer) output(tb testing.TB) outputCounts {
	tb.Helper()
	if p.sink == nil {
		return countFile(tb, p.out, p.mark)
	}
	if p.sink.ProcessState == nil {
		select {
		case <-p.exited:
		default:
			tb.Fatal("the pipe's counts are known once the tracer has stopped")
		}
		if err := p.sink.Wait(); err != nil {
			tb.Fatalf("the output sink: %v", err)
		}
	}
	return readSinkCounts(tb, p.out)
}

// waitIdle waits until the tracer has caught up with what the churn left
// in its buffers: its CPU time stops moving for 200 ms.
func (p *benchTracer) waitIdle(tb testing.TB) {
	tb.Helper()
	last, since := p.cpu(tb), time.Now()
	testutil.WaitFor(tb, time.Minute, "the tracer to drain its buffers", func() bool {
		now := p.cpu(tb)
		if now != last {
			last, since = now, time.Now()
		}
		return time.Since(since) >= 200*time.Millisecond
	})
}

// stop sends SIGINT, as Ctrl-C does, and returns the CPU the tracer used
// after it was ready (rusage at exit minus /proc at ready) and its
// programs' run time since ready.
func (p *benchTracer) stop(tb testing.TB) (cpu time.Duration, bpf []progRun) {
	tb.Helper()
	bpf = progDelta(p.progStats(tb), p.atReady)
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		tb.Fatalf("interrupting the tracer: %v", err)
	}
	deadline := time.After(10 * time.Second)
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for exited := false; !exited; {
		select {
		case <-p.exited:
			exited = true
		case <-retry.C:
			if p.resignal {
				p.cmd.Process.Signal(os.Interrupt)
			}
		case <-deadline:
			tb.Fatalf("%s still running 10 s after SIGINT; its threads: %s; stderr: %s",
				p.cmd.Path, threadStates(p.cmd.Process.Pid), p.stderr.Bytes())
		}
	}
	if p.waitErr != nil {
		tb.Fatalf("%s: %v: %s", p.cmd.Path, p.waitErr, p.stderr.Bytes())
	}
	ru := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	total := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return total - p.cpuAtReady, bpf
}

// threadStates says what each thread of a process that does not exit is
// doing: state, kernel function it waits in, CPU ticks.
func threadStates(pid int) string {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	var out []string
	for _, task := range tasks {
		stat, _ := os.ReadFile(filepath.Join(task, "stat"))
		wchan, _ := os.ReadFile(filepath.Join(task, "wchan"))
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 12 {
			out = append(out, fmt.Sprintf("%s %s in %s, %s+%s ticks", filepath.Base(task), f[0], wchan, f[11], f[12]))
		}
	}
	return strings.Join(out, "; ")
}

// cpu is the tracer's user+system time so far, all threads, from
// /proc/PID/stat (fields 14 and 15, in clock ticks).
func (p *benchTracer) cpu(tb testing.TB) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		tb.Fatalf("reading the tracer's CPU time: %v", err)
	}
	// The command name in parentheses may hold spaces: count from after it.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		tb.Fatalf("parsing /proc/%d/stat: %v", p.cmd.Process.Pid, err)
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * tick
}

// progStats reads bpf_stats of each of the tracer's programs, in the
// order of p.progs.
func (p *benchTracer) progStats(tb testing.TB) []progRun {
	tb.Helper()
	out := make([]progRun, len(p.progs))
	for i, id := range p.progs {
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			tb.Fatalf("opening BPF program %d: %v", id, err)
		}
		st, err := prog.Stats()
		info, ierr := prog.Info()
		prog.Close()
		if err = errors.Join(err, ierr); err != nil {
			tb.Fatalf("reading the stats of BPF program %d: %v", id, err)
		}
		out[i] = progRun{name: info.Name, runtime: st.Runtime, runs: st.RunCount}
	}
	return out
}

// bpfProgsOf lists the BPF programs a process holds open, from the
// prog_id line of each bpf-prog fd's fdinfo: that tells one tracer's
// programs from those of anything else loaded on the machine.
func bpfProgsOf(pid int) ([]ebpf.ProgramID, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing the tracer's fds: %w", err)
	}
	var ids []ebpf.ProgramID
	for _, e := range ents {
		if link, _ := os.Readlink(filepath.Join(dir, e.Name())); link != "anon_inode:bpf-prog" {
			continue
		}
		id, err := fdinfoProgID(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func fdinfoProgID(path string) (ebpf.ProgramID, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "prog_id:"); ok {
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			return ebpf.ProgramID(id), err
		}
	}
	return 0, fmt.Errorf("%s: no prog_id line", path)
}

// mountTracefs mounts tracefs where bpftrace looks for tracepoint formats,
// unless it is already there, and unmounts it when the benchmark ends.
func mountTracefs(tb testing.TB) {
	tb.Helper()
	const dir = "/sys/kernel/tracing"
	if _, err := os.Stat(filepath.Join(dir, "events")); err == nil {
		return
	}
	if err := unix.Mount("tracefs", dir, "tracefs", 0, ""); err != nil {
		tb.Fatalf("bpftrace needs tracefs: mounting it on %s: %v", dir, err)
	}
	tb.Cleanup(func() { unix.Unmount(dir, 0) })
}
