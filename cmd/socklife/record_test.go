package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/churn"
	"github.com/socklife/socklife/internal/testutil"
)

// An unwritable path is found before anything is attached: even a user who
// could not attach anything gets the path error, not the capability one.
func TestRecordUnwritable(t *testing.T) {
	testutil.RequireRoot(t)
	// A missing directory under one anyone may search: ENOENT for nobody too.
	path := filepath.Join("/", "socklife-test-missing-"+strconv.Itoa(os.Getpid()), "rec.ndjson")
	cmd := socklifeCmd(t, "record", "-o", path)
	runAsNobody(t, cmd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	want := "socklife: creating " + path + ": no such file or directory\n"
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || stderr.String() != want {
		t.Errorf("%v, stderr %q; want exit status 1 and %q", err, stderr.String(), want)
	}
}

// startRecord runs socklife record -o path with args and returns once it
// has attached.
func startRecord(t testing.TB, path string, args ...string) *socklifeRun {
	t.Helper()
	return startSocklife(t, nil, append([]string{"record", "-o", path}, args...)...)
}

// records parses every line of the file; any line that is not one whole
// JSON object fails the test.
func records(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("%s ends in a partial line: %q", path, data[max(0, len(data)-80):])
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d does not parse: %v: %s", len(out)+1, err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// Before Linux 5.12 a note says recursion misses are not counted.
var recordSummary = regexp.MustCompile(`^socklife: (\d+) records, \d+ events, 0 lost(?: \(recursion not counted before Linux 5\.12\))?, 0 resyncs\n$`)

// Every kind of end, for connections older and newer than the recording;
// with --comm too, which older connections match through the owners the
// start-up /proc scan found.
func TestRecordLifecycle(t *testing.T) {
	testutil.RequireRoot(t)
	for _, extra := range [][]string{nil, {"--comm", "^socklife"}} {
		t.Run(strings.Join(append([]string{"flags"}, extra...), " "), func(t *testing.T) { recordLifecycle(t, extra) })
	}
}

func recordLifecycle(t *testing.T, extra []string) {
	ln := testutil.PlainListener(t)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	dial := func() (c, s *net.TCPConn) { return testutil.Pair(t, ln) }
	oldC, oldS := dial() // before record starts
	path := filepath.Join(t.TempDir(), "rec.ndjson")
	r := startRecord(t, path, append([]string{"--port", port, "--include-open"}, extra...)...)
	// The server closes once the client's FIN is in, as servers do: closing
	// both at once races the FIN (under load the loopback softirq can run
	// after the second close) and makes a simultaneous close, local on both.
	oldC.Close()
	oldS.SetReadDeadline(time.Now().Add(testutil.Scaled(5 * time.Second)))
	if _, err := io.Copy(io.Discard, oldS); err != nil {
		t.Fatalf("waiting for the client's FIN: %v", err)
	}
	oldS.Close()
	resetC, resetS := dial()
	resetC.SetLinger(0)
	resetC.Close()
	testutil.WaitFor(t, 5*time.Second, "the reset to reach the server", func() bool {
		_, err := resetS.Read(make([]byte, 1))
		return err != nil
	})
	resetS.Close()
	openC, openS := dial()
	defer openC.Close()
	defer openS.Close()
	testutil.WaitFor(t, 5*time.Second, "4 records", func() bool { return len(records(t, path)) >= 4 })
	r.stop(t)
	recs := records(t, path)
	if m := recordSummary.FindStringSubmatch(r.stderr.String()); m == nil || m[1] != strconv.Itoa(len(recs)) {
		t.Errorf("stderr %q, want the summary with %d records", r.stderr.String(), len(recs))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	got := map[string]int{}
	for _, m := range recs {
		first := m["states"].([]any)[0].(map[string]any)
		key := fmt.Sprint(m["role"], " ", m["closed_by"])
		if m["open"] == true {
			key = fmt.Sprint(m["role"], " open")
		}
		got[key+" seen="+strconv.FormatBool(m["seen_from_start"].(bool))+" first="+first["state"].(string)]++
		if m["seen_from_start"] == false && (first["entered_at"] != nil || m["opened_at"] != nil) {
			t.Errorf("predating connection with times it cannot know: %v", m)
		}
		if m["bytes_sent"] == nil || m["srtt_us"] == nil {
			t.Errorf("record without tcp_info totals: %v", m)
		}
		if m["seen_from_start"] == true && (first["entered_at"] == nil || m["opened_at"] == nil) {
			t.Errorf("connection seen from start without its times: %v", m)
		}
	}
	want := map[string]int{
		"client local seen=false first=ESTABLISHED": 1, "server remote seen=false first=ESTABLISHED": 1,
		"client reset seen=true first=SYN_SENT": 1, "server reset seen=true first=SYN_RECV": 1,
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%d records %q, want %d; all: %v", got[k], k, n, got)
		}
	}
	// --include-open: the pair still open at stop, once each.
	if got["client open seen=true first=SYN_SENT"] != 1 || got["server open seen=true first=SYN_RECV"] != 1 || len(recs) != 6 {
		t.Errorf("records %v, want also the open client and server (6 in all)", got)
	}
}

// SIGKILL at any moment leaves only whole records.
func TestRecordKill9(t *testing.T) {
	testutil.RequireRoot(t)
	gen, err := churn.New(churn.Config{Listeners: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer gen.Close()
	path := filepath.Join(t.TempDir(), "rec.ndjson")
	r := startRecord(t, path, "--port", strconv.Itoa(int(gen.Port())))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := gen.Run(ctx, 1<<30); done <- err }()
	testutil.WaitFor(t, 10*time.Second, "300 KB of records", func() bool {
		st, err := os.Stat(path)
		return err == nil && st.Size() > 300<<10
	})
	r.cmd.Process.Kill()
	r.wait(t, 10*time.Second)
	cancel()
	<-done
	if recs := records(t, path); len(recs) < 300 {
		t.Errorf("%d records in over 300 KB", len(recs))
	}
}

// A full disk: one line on stderr, exit 1, every record written intact.
func TestRecordDiskFull(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mounting a small tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, 0) })
	gen, err := churn.New(churn.Config{Listeners: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer gen.Close()
	path := filepath.Join(dir, "rec.ndjson")
	r := startRecord(t, path, "--port", strconv.Itoa(int(gen.Port())))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go gen.Run(ctx, 1<<30)
	err2 := r.wait(t, 20*time.Second)
	var exit *exec.ExitError
	stderr := r.stderr.String()
	wantErr := "socklife: writing " + path + ": no space left on device\n"
	if !errors.As(err2, &exit) || exit.ExitCode() != 1 || !strings.HasSuffix(stderr, wantErr) || strings.Count(stderr, "\n") != 2 {
		t.Errorf("%v, stderr %q; want exit 1, the summary and %q", err2, stderr, wantErr)
	}
	recs := records(t, path)
	if m := recordSummary.FindStringSubmatch(strings.SplitAfter(stderr, "\n")[0]); m == nil || m[1] != strconv.Itoa(len(recs)) || len(recs) == 0 {
		t.Errorf("stderr %q, file has %d records", stderr, len(recs))
	}
}
