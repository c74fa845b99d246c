package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/render"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/snapshot"
)

// server is a TCP server on loopback owned by the test process. A leaky one
// never closes what it accepts, so each connection its client closes stays
// in CLOSE_WAIT; a normal one closes on EOF.
type server struct {
	ln     net.Listener
	port   int
	closed atomic.Int32 // connections the normal server has closed
}

func startServer(t *testing.T, leaky bool) *server {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false) // plain TCP sockets, as most servers have
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	var held []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if leaky {
				held = append(held, c)
				continue
			}
			go func() { io.Copy(io.Discard, c); c.Close(); s.closed.Add(1) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	})
	return s
}

// connectAndLeave opens n connections to s and closes them from the client side.
func (s *server) connectAndLeave(t *testing.T, n int) {
	t.Helper()
	for range n {
		c, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(s.port))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
}

// waitCloseWait waits until the server's port has n sockets in CLOSE_WAIT.
func (s *server) waitCloseWait(t *testing.T, n int) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, strconv.Itoa(n)+" CLOSE_WAIT sockets", func() bool {
		res, err := snapshot.Dump(context.Background(), snapshot.Options{TCP: true, IPv4: true, States: tcpstate.Of(tcpstate.CloseWait)})
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, sk := range res.Sockets {
			if int(sk.Local.Port()) == s.port {
				got++
			}
		}
		return got == n
	})
}

// A server that never closes what its peers closed: closewait names this
// process with the exact count, the oldest age a lower bound for the
// sockets that were already in CLOSE_WAIT at start, and exits 1.
func TestCloseWaitAlertsOnLeak(t *testing.T) {
	testutil.RequireRoot(t)
	s := startServer(t, true)
	s.connectAndLeave(t, 3)
	s.waitCloseWait(t, 3)
	run := startSocklife(t, nil, "closewait", "--for", "30s", "--threshold", "6", "--port", strconv.Itoa(s.port),
		"--interval", "100ms", "-o", "json")
	s.connectAndLeave(t, 3)
	if code := run.exitCode(t, 20*time.Second); code != 1 {
		t.Fatalf("exit status %d, want 1; stdout %q stderr %q", code, run.stdout.String(), run.stderr.String())
	}
	if strings.Contains(run.stderr.String(), "exit status") {
		t.Errorf("stderr %q: an alert is the answer, not an error to print", run.stderr.String())
	}
	var v closewaitVerdict
	if err := json.Unmarshal(run.stdout.Bytes(), &v); err != nil {
		t.Fatalf("output %q: %v", run.stdout.String(), err)
	}
	if !v.Alert || len(v.Offenders) != 1 {
		t.Fatalf("verdict %+v, want an alert naming one process", v)
	}
	o := v.Offenders[0]
	if int(o.PID) != os.Getpid() || o.Count != 6 || len(o.Ports) != 1 || int(o.Ports[0].Port) != s.port || !o.OldestIsLowerBound {
		t.Errorf("offender %+v, want pid %d with 6 sockets on port %d, oldest a lower bound", o, os.Getpid(), s.port)
	}
}

// A normal server: its clients close first and keep TIME_WAIT, its own
// sockets pass through CLOSE_WAIT only until it closes them. Not flagged.
func TestCloseWaitQuietForNormalServer(t *testing.T) {
	testutil.RequireRoot(t)
	s := startServer(t, false)
	run := startSocklife(t, nil, "closewait", "--for", "2s", "--threshold", "3", "--port", strconv.Itoa(s.port), "--interval", "100ms")
	// One at a time, each closed by the server before the next: a burst
	// would let the server's goroutines fall --threshold behind on a loaded
	// machine, which is CLOSE_WAIT build-up, if brief.
	for i := range int32(20) {
		s.connectAndLeave(t, 1)
		testutil.WaitFor(t, 5*time.Second, "the server to close", func() bool { return s.closed.Load() == i+1 })
	}
	if code := run.exitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d, want 0; stdout %q stderr %q", code, run.stdout.String(), run.stderr.String())
	}
	if !strings.HasPrefix(run.stdout.String(), "ok: no process crossed the CLOSE_WAIT limits") {
		t.Errorf("stdout %q", run.stdout.String())
	}
}

// top -o json: one object per interval; the CLOSE_WAIT section names the
// leaking process and the listener section this test's listener.
func TestTopJSONNamesLeakyProcess(t *testing.T) {
	testutil.RequireRoot(t)
	s := startServer(t, true)
	s.connectAndLeave(t, 4)
	s.waitCloseWait(t, 4)
	run := startSocklife(t, nil, "top", "-o", "json", "-n", "3", "--interval", "100ms", "--port", strconv.Itoa(s.port))
	if code := run.exitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("exit status %d; stderr %q", code, run.stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(run.stdout.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines, want 3 (one per interval): %q", len(lines), run.stdout.String())
	}
	var f render.FrameJSON
	if err := json.Unmarshal([]byte(lines[2]), &f); err != nil {
		t.Fatal(err)
	}
	if f.CloseWait.Total != 4 || len(f.CloseWait.Processes) != 1 {
		t.Fatalf("close_wait %+v, want 4 sockets of one process", f.CloseWait)
	}
	p := f.CloseWait.Processes[0]
	if int(p.PID) != os.Getpid() || p.Count != 4 || f.States["CLOSE_WAIT"] < 4 {
		t.Errorf("process %+v (CLOSE_WAIT total %d), want pid %d with 4", p, f.States["CLOSE_WAIT"], os.Getpid())
	}
	if len(f.Listeners) != 1 || int(f.Listeners[0].PID) != os.Getpid() || f.Listeners[0].Local != "127.0.0.1:"+strconv.Itoa(s.port) {
		t.Errorf("listeners %+v, want this test's listener on port %d", f.Listeners, s.port)
	}
}
