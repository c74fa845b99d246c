package main

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
	"golang.org/x/sys/unix"
)

// startToPipe runs `socklife args...` with stdout on a pipe the test
// holds the read end of. It keeps the write end too, to poll it, so the
// read end never sees EOF.
func startToPipe(t *testing.T, args ...string) (run *socklifeRun, r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() }) // after socklife's cleanup has killed it
	return startSocklife(t, w, args...), r, w
}

// `socklife trace --port P | head -1` with no traffic: head takes the
// header and goes; trace must notice and exit, not wait for an event.
func TestTraceExitsWhenReaderGoes(t *testing.T) {
	testutil.RequireRoot(t)
	run, r, _ := startToPipe(t, "trace", "--port", "1")
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "TIME") {
		t.Fatalf("first line %q, %v; want the header at once", line, err)
	}
	r.Close()
	if code := run.exitCode(t, 5*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0; stderr %q", code, run.stderr.String())
	}
}

// A reader that stops reading leaves trace blocked in write(); SIGTERM
// must still stop it, with the summary.
func TestTraceStopsWithBlockedReader(t *testing.T) {
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	port := ln.Addr().(*net.TCPAddr).Port
	run, _, w := startToPipe(t, "trace", "--port", strconv.Itoa(port), "-o", "json")
	// Some 400 KB of JSON lines: more than a pipe holds.
	for range 150 {
		loopbackConn(t, ln)
	}
	// SIGTERM once trace's writes block: when the pipe has no free slot,
	// its write end stops polling writable. (Counting the bytes in it says
	// less: a write that does not fit the last page takes a fresh one, so
	// the flushes of a draining trace leave pages part-filled.)
	testutil.WaitFor(t, 10*time.Second, "the pipe to fill", func() bool { return pipeFull(w) })
	run.cmd.Process.Signal(syscall.SIGTERM)
	if code := run.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0; stderr %q", code, run.stderr.String())
	}
	// the summary, its loss by cause where there is one to give (before
	// 5.12: recursion not counted), then the reason it stopped early
	if !regexp.MustCompile(`^socklife: \d+ events, \d+ lost( \([^)]*\))? \(output blocked: its reader stopped reading\)\n$`).MatchString(run.stderr.String()) {
		t.Errorf("stderr %q, want the summary noting the blocked output", run.stderr.String())
	}
}

// pipeFull says whether the pipe's write end w has no free slot: it
// stops polling writable.
func pipeFull(w *os.File) bool {
	fds := []unix.PollFd{{Fd: int32(w.Fd()), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 0
}

// writingStdout says whether a thread of the process is in write(1, ...):
// with a full pipe on stdout, blocked there. (A full pipe alone may have
// been filled by the last write, with the writer idle.)
func writingStdout(t *testing.T, pid int) bool {
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/syscall")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if b, err := os.ReadFile(task); err == nil && strings.HasPrefix(string(b), strconv.Itoa(unix.SYS_WRITE)+" 0x1 ") {
			return true
		}
	}
	return false
}

// top and closewait write frames; one blocked on a reader that stopped
// reading must not hold SIGTERM up: the stop gives up on it and says so.
func TestTopStopsWithBlockedReader(t *testing.T) {
	testutil.RequireRoot(t)
	run, _, w := startToPipe(t, "top", "-o", "json", "--interval", "10ms")
	testutil.WaitFor(t, 30*time.Second, "top blocked writing a full pipe", func() bool {
		return pipeFull(w) && writingStdout(t, run.cmd.Process.Pid)
	})
	run.cmd.Process.Signal(syscall.SIGTERM)
	if code := run.exitCode(t, 10*time.Second); code != 1 || run.stderr.String() != "socklife: "+errOutputBlocked.Error()+"\n" {
		t.Errorf("exit status %d, stderr %q; want 1 and the blocked output said", code, run.stderr.String())
	}
}

// snapshot too: a stalled reader does not keep a stopped snapshot alive
// (it waited for main's last resort, 15 s, before).
func TestSnapshotStopsWithBlockedReader(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.OpenConns(t, 2000) // some 300 KB of table: more than a pipe holds
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := socklifeCmd(t, "snapshot", "-t", "-a")
	cmd.Stdout = w
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	testutil.WaitFor(t, 30*time.Second, "snapshot blocked writing its table", func() bool { return writingStdout(t, cmd.Process.Pid) })
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "stopped with the output blocked") {
			t.Errorf("snapshot: %v, stderr %q; want exit status 1 saying the output was blocked", err, stderr.String())
		}
	case <-time.After(10 * time.Second): // less than main's last resort
		cmd.Process.Kill()
		t.Fatalf("snapshot still running 10 s after SIGTERM with its output blocked")
	}
}
