package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/testutil"
)

// queuedListener listens on loopback (from before socklife starts, as a
// stuck server would) with one connection in its queue that nobody accepts.
func queuedListener(t *testing.T) uint16 {
	t.Helper()
	_, port := testutil.RawListener(t, [4]byte{127, 0, 0, 1}, 0, 4)
	c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return port
}

// A listener nobody accepts on: --for flags the stall with our pid (found
// in /proc: the listener predates the tracer) and exits 1.
func TestBacklogForStalled(t *testing.T) {
	testutil.RequireRoot(t)
	port := queuedListener(t)
	p := strconv.Itoa(int(port))
	stdout, stderr, code := runCLI(t, "backlog", "--for", "1200ms", "--interval", "200ms", "--stall", "300ms",
		"--port", p, "--pid", strconv.Itoa(os.Getpid()), "-o", "json")
	if code != 1 || !strings.Contains(stderr, "socklife: 1 stalls, 0 drops") {
		t.Errorf("exit %d, stderr %q; want 1 and the stall counted", code, stderr)
	}
	var stalls, rows int
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var r render.BacklogJSON
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		for _, l := range r.Listeners {
			rows++
			if l.Local != "127.0.0.1:"+p || l.Queue != 1 || l.Backlog != 4 || l.PID == nil || *l.PID != uint32(os.Getpid()) {
				t.Errorf("listener row %+v, want 127.0.0.1:%s queue 1 backlog 4 pid %d", l, p, os.Getpid())
			}
		}
		for _, s := range r.Stalls {
			stalls++
			if s.Event != "begin" || s.PID != uint32(os.Getpid()) || s.StalledMillis < 300 {
				t.Errorf("stall %+v, want a begin by pid %d after 300 ms", s, os.Getpid())
			}
		}
	}
	if rows == 0 || stalls != 1 {
		t.Errorf("%d listener rows, %d stall events, want some and 1:\n%s", rows, stalls, stdout)
	}
}

// Nothing wrong: exit 0, and the table names the listener.
func TestBacklogForClean(t *testing.T) {
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	stdout, stderr, code := runCLI(t, "backlog", "--for", "500ms", "--interval", "200ms", "--port", port)
	if code != 0 || stderr != "" {
		t.Errorf("exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	if !strings.Contains(stdout, "LISTEN ") || !strings.Contains(stdout, "127.0.0.1:"+port) {
		t.Errorf("table without the listener:\n%s", stdout)
	}
}
