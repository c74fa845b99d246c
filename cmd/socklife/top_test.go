package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
)

// topFrames splits what top drew on a terminal into frames (each starts by
// clearing the screen) and returns the complete ones, those that reached
// the key line at their foot.
func topFrames(out string) []string {
	var frames []string
	for _, f := range strings.Split(out, "\x1b[H\x1b[2J")[1:] {
		if strings.Contains(f, "q quit  space pause") {
			frames = append(frames, f)
		}
	}
	return frames
}

// top in an 80x24 terminal with 20 listeners and a leaking process: every
// frame fits the screen without wrapping, the state counts and the
// CLOSE_WAIT section always on it; space pauses with a visible PAUSED, q
// quits.
func TestTopFitsTerminal(t *testing.T) {
	testutil.RequireRoot(t)
	s := startServer(t, true)
	s.connectAndLeave(t, 3)
	s.waitCloseWait(t, 3)
	for range 20 {
		var lc net.ListenConfig
		ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
	}
	const rows, cols = 24, 80
	pty := testutil.OpenPTY(t, rows, cols)
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := socklifeCmd(t, append([]string{"top", "--interval", "200ms", "--ready-file", ready}, disableHookArgs()...)...)
	cmd.Stdin, cmd.Stdout = pty.Slave, pty.Slave
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })

	testutil.WaitFor(t, 20*time.Second, "three frames", func() bool { return len(topFrames(pty.Output())) >= 3 })
	me := strconv.Itoa(os.Getpid())
	for i, f := range topFrames(pty.Output()) {
		lines := strings.Split(strings.TrimRight(f, "\r\n"), "\r\n")
		if len(lines) > rows {
			t.Errorf("frame %d: %d lines on a %d-line terminal:\n%s", i, len(lines), rows, f)
		}
		for _, l := range lines {
			if len(l) > cols {
				t.Errorf("frame %d: a line of %d columns wraps on a %d-column terminal: %q", i, len(l), cols, l)
			}
		}
		// the state counts, and this process's row of CLOSE_WAIT sockets
		for _, want := range []string{"ESTAB ", "CLOSE-WAIT ", "CLOSE-WAIT by process"} {
			if !strings.Contains(f, want) {
				t.Errorf("frame %d lacks %q:\n%s", i, want, f)
			}
		}
		cw := strings.Index(f, "CLOSE-WAIT by process")
		if cw < 0 || !slices.ContainsFunc(lines, func(l string) bool {
			fields := strings.Fields(l)
			return len(fields) > 2 && fields[0] == me && strings.Index(f, l) > cw
		}) {
			t.Errorf("frame %d has no CLOSE-WAIT row for this process (%s):\n%s", i, me, f)
		}
		if i == 0 {
			t.Logf("a frame:\n%s", f)
		}
	}
	pty.Type(t, " ")
	testutil.WaitFor(t, 5*time.Second, "the frame marked PAUSED", func() bool {
		frames := topFrames(pty.Output())
		return strings.Contains(frames[len(frames)-1], "PAUSED")
	})
	pty.Type(t, "q")
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("top: %v; stderr %q", waitErr, stderr.String())
		}
	case <-time.After(testutil.Scaled(10 * time.Second)):
		t.Fatalf("top still running after q; stderr %q", stderr.String())
	}
}
