package main

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
	"golang.org/x/sys/unix"
)

// startTraceToPipe runs socklife trace with stdout on a pipe the test
// holds the read end of.
func startTraceToPipe(t *testing.T, args ...string) (*socklifeRun, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() }) // after socklife's cleanup has killed it
	defer w.Close()                 // socklife has its own copy
	return startSocklife(t, w, append([]string{"trace"}, args...)...), r
}

// `socklife trace --port P | head -1` with no traffic: head takes the
// header and goes; trace must notice and exit, not wait for an event.
func TestTraceExitsWhenReaderGoes(t *testing.T) {
	testutil.RequireRoot(t)
	run, r := startTraceToPipe(t, "--port", "1")
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
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	run, r := startTraceToPipe(t, "--port", strconv.Itoa(port), "-o", "json")
	// Some 400 KB of JSON lines: more than a pipe holds.
	for range 150 {
		loopbackConn(t, ln)
	}
	// SIGTERM once trace is blocked, i.e. the pipe is full (less than a
	// page short: writes fill the last page before they block).
	fd := int(r.Fd())
	size, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the pipe to fill", func() bool {
		n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
		return err == nil && n > size-4096
	})
	run.cmd.Process.Signal(syscall.SIGTERM)
	if code := run.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0; stderr %q", code, run.stderr.String())
	}
	if !strings.Contains(run.stderr.String(), "lost (output blocked: its reader stopped reading)") {
		t.Errorf("stderr %q, want the summary noting the blocked output", run.stderr.String())
	}
}
