package main

import (
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
)

// The end-of-run summary with a loss: its total and causes, then resyncs.
// recursionCount is how a summary gives the recursion misses: a count, or
// before Linux 5.12 (no recursion_misses) a note that they are not counted.
const recursionCount = `recursion (?:\d+|not counted before Linux 5\.12)`

var lossySummary = regexp.MustCompile(`(?m)^socklife: (\d+) records, \d+ events, (\d+) lost \(ring full (\d+), recursion (\d+|not counted before Linux 5\.12)\), (\d+) resyncs$`)

// 40,000 connections reset at once, recorded through a ring too small for
// the burst: events are lost, the summary counts them by cause, a warning
// says what that cost, and every connection still has exactly one record,
// because the run ends with a resync whenever anything was lost; none is
// left for --include-open to write as open.
func TestRecordBurstLoss(t *testing.T) {
	testutil.RequireRoot(t)
	n := 40000
	if testutil.Scaled(1) > 1 {
		// emulated (the kernel matrix under TCG): a quarter of the burst
		// still overflows a 4 KiB ring many times over
		n = 10000
	}
	conns := testutil.OpenConns(t, n)
	listeners := map[string]bool{}
	var ports []string
	for _, h := range conns.Holders {
		listeners[h.Listener.String()] = true
		ports = append(ports, strconv.Itoa(int(h.Listener.Port())))
	}
	path := filepath.Join(t.TempDir(), "rec.ndjson")
	r := startRecord(t, path, "--ring-size", "4096", "--include-open", "--port", strings.Join(ports, ","))
	conns.Close() // returns once the holders exited: every socket is freed
	r.stop(t)
	ids := map[float64]bool{}
	open := 0
	for _, rec := range records(t, path) {
		if listeners[rec["local"].(string)] || listeners[rec["remote"].(string)] {
			ids[rec["id"].(float64)] = true
			if rec["open"] == true {
				open++
			}
		}
	}
	if open > 0 {
		t.Errorf("%d connections written as open, all were closed", open)
	}
	stderr := r.stderr.String()
	m := lossySummary.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("stderr %q: no summary with the loss by cause", stderr)
	}
	lost, _ := strconv.Atoi(m[2])
	ring, _ := strconv.Atoi(m[3])
	recursion, _ := strconv.Atoi(m[4]) // 0 where not counted
	if ring == 0 || lost != ring+recursion || m[5] == "0" {
		t.Errorf("stderr %q: want ring-full loss with a 4 KiB ring, adding up, and a resync", stderr)
	}
	if want := 2 * conns.N; len(ids) != want || m[1] != strconv.Itoa(len(ids)) {
		t.Errorf("%d connections recorded (summary: %s records), want %d", len(ids), m[1], want)
	}
	if !strings.Contains(stderr, "socklife: warning: "+m[2]+" events lost;") {
		t.Errorf("stderr %q: no warning about the loss", stderr)
	}
}

// A server that closed its listener but keeps an accepted connection, both
// older than the recording: nothing left on the host says which end
// connected out, so neither is called a client or a server.
func TestRecordRoleUnknownWithoutListener(t *testing.T) {
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	lnAddr := netip.MustParseAddrPort(ln.Addr().String())
	c, s := testutil.Pair(t, ln)
	ln.Close()
	path := filepath.Join(t.TempDir(), "rec.ndjson")
	r := startRecord(t, path, "--port", strconv.Itoa(int(lnAddr.Port())))
	closeGracefully(t, c, s)
	testutil.WaitFor(t, 5*time.Second, "2 records", func() bool { return len(records(t, path)) >= 2 })
	r.stop(t)
	for _, rec := range records(t, path) {
		if rec["role"] != nil || rec["listener"] != nil {
			t.Errorf("%v > %v: role %v listener %v, want both null", rec["local"], rec["remote"], rec["role"], rec["listener"])
		}
	}
}

// closeGracefully ends a connection client first, the server once the
// client's FIN is in.
func closeGracefully(t *testing.T, c, s *net.TCPConn) {
	t.Helper()
	c.Close()
	s.SetReadDeadline(time.Now().Add(testutil.Scaled(5 * time.Second)))
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server read data, want the client's FIN")
	}
	s.Close()
}

// trace has no table to resync: its summary says what was lost and why,
// and a warning says the trace has gaps.
func TestTraceLossWarning(t *testing.T) {
	testutil.RequireRoot(t)
	conns := testutil.OpenConns(t, 4000)
	port := strconv.Itoa(int(conns.Holders[0].Listener.Port()))
	r := startSocklife(t, nil, "trace", "-o", "json", "--ring-size", "4096", "--port", port)
	conns.Close()
	r.stop(t)
	stderr := r.stderr.String()
	m := regexp.MustCompile(`(?m)^socklife: \d+ events, (\d+) lost \(ring full \d+, ` + recursionCount + `\)\nsocklife: warning: (\d+) events lost: the trace has gaps$`).FindStringSubmatch(stderr)
	if m == nil || m[1] == "0" || m[1] != m[2] {
		t.Errorf("stderr %q: want the loss by cause and a warning", stderr)
	}
}

// backlog has no table to resync either: at its end a warning says how
// many events were lost, by cause, and what that costs its accounting.
func TestBacklogLossWarning(t *testing.T) {
	testutil.RequireRoot(t)
	r := startSocklife(t, nil, "backlog", "--ring-size", "4096", "--interval", "200ms", "-o", "json")
	conns := testutil.OpenConns(t, 4000) // accepted in batches of 1024
	conns.Close()
	r.stop(t)
	stderr := r.stderr.String()
	if !regexp.MustCompile(`(?m)^socklife: warning: [1-9]\d* events lost \(ring full [1-9]\d*, ` + recursionCount + `\): the accounting of the listeners they touched is short by as many$`).MatchString(stderr) {
		t.Errorf("stderr %q: want the loss by cause and a warning", stderr)
	}
}
