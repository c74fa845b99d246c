package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
)

// asMainEnv makes the test binary run socklife's main instead of the tests,
// so the end-to-end tests need no Go toolchain (the kernel-matrix VMs have none).
const asMainEnv = "SOCKLIFE_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(ownCgroupNSEnv) == "1" {
		os.Exit(runInOwnCgroupNS()) // and its child runs main
	}
	if os.Getenv(asMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	if path := os.Getenv(sinkCountsEnv); path != "" {
		os.Exit(runSink(path)) // a benchmark's output reader
	}
	os.Exit(m.Run())
}

// socklifeCmd is the command `socklife args...`, run by this test binary.
func socklifeCmd(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	return cmd
}

// othersCanRun reports whether a user other than the owner may execute path:
// every directory above it searchable, the file executable, by others.
func othersCanRun(path string) bool {
	for p := path; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == filepath.Dir(p) {
			return true
		}
	}
}

func expectedAcceptHook() string {
	if h := os.Getenv("SOCKLIFE_TEST_EXPECT_ACCEPT_HOOK"); h != "" {
		return h
	}
	return "tracepoint"
}

// disableHookArgs passes the kernel-matrix runner's SOCKLIFE_TEST_DISABLE_HOOKS on.
func disableHookArgs() []string {
	var args []string
	for _, h := range strings.Split(os.Getenv("SOCKLIFE_TEST_DISABLE_HOOKS"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			args = append(args, "--disable-hook", h)
		}
	}
	return args
}

func TestInfoNamesAcceptHook(t *testing.T) {
	testutil.RequireRoot(t)
	out, err := socklifeCmd(t, append([]string{"info"}, disableHookArgs()...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("socklife info: %v\n%s", err, out)
	}
	want := map[string]string{
		"tracepoint": "accept: syscalls:sys_exit_accept{,4} tracepoint (fexit: ",
		"kretprobe":  "accept: inet_csk_accept kretprobe (fexit: ",
		"fexit":      "accept: inet_csk_accept fexit\n",
	}[expectedAcceptHook()]
	lines := []string{"kernel: ", "btf: yes\n", "state: sock:inet_sock_set_state ", want}
	if os.Getenv("SOCKLIFE_TEST_EXPECT_ACCEPT_HOOK") == "" {
		// this machine: no kprobes, fexit refused
		lines = append(lines, "(fexit: EPERM, kretprobe: not supported by kernel)\n")
	}
	for _, line := range lines {
		if !strings.Contains(string(out), line) {
			t.Errorf("socklife info does not say %q:\n%s", line, out)
		}
	}
}

// Before Linux 5.12 a note says recursion misses are not counted.
var traceSummary = regexp.MustCompile(`^socklife: (\d+) events, (\d+) lost(?: \(recursion not counted before Linux 5\.12\))?\n$`)

func (r *socklifeRun) checkSummary(t *testing.T, events int) {
	t.Helper()
	m := traceSummary.FindStringSubmatch(r.stderr.String())
	if m == nil || m[1] != strconv.Itoa(events) || m[2] != "0" {
		t.Errorf("stderr %q, want exactly \"socklife: %d events, 0 lost\"", r.stderr.String(), events)
	}
}

// loopbackConn makes one connection to ln, the client closing first.
func loopbackConn(t *testing.T, ln net.Listener) {
	t.Helper()
	c, s := testutil.Pair(t, ln)
	c.Close()
	io.Copy(io.Discard, s)
	s.Close()
}

func TestTraceTable(t *testing.T) {
	testutil.RequireRoot(t)
	pid := strconv.Itoa(os.Getpid())
	// --pid, so the listener can start after the trace and lend its owner
	// to the child before accept.
	r := startSocklife(t, nil, "trace", "--pid", pid)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	loopbackConn(t, ln)
	ln.Close()
	want := []string{
		"CLOSE -> LISTEN -", "LISTEN -> CLOSE",
		"CLOSE -> SYN_SENT -", "SYN_SENT -> ESTABLISHED", "ESTABLISHED -> FIN_WAIT1", "FIN_WAIT1 -> FIN_WAIT2", "FIN_WAIT2 -> CLOSE",
		"LISTEN -> SYN_RECV -", "SYN_RECV -> ESTABLISHED", "ACCEPT -> ESTABLISHED", "ESTABLISHED -> CLOSE_WAIT", "CLOSE_WAIT -> LAST_ACK", "LAST_ACK -> CLOSE",
	}
	testutil.WaitFor(t, 5*time.Second, "the connection's lines", func() bool {
		return strings.Count(r.stdout.String(), "\n") >= 1+len(want)
	})
	lines := r.stop(t)
	r.checkSummary(t, len(lines)-1)
	if len(lines) != 1+len(want) || !strings.HasPrefix(lines[0], "TIME ") {
		t.Errorf("got %d lines, want the header and %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	body := strings.Join(lines[1:], "\n")
	squeezed := regexp.MustCompile(` +`).ReplaceAllString(body, " ")
	for _, w := range want {
		if !strings.Contains(squeezed, w) {
			t.Errorf("no %q line in:\n%s", w, body)
		}
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); f[1] != pid {
			t.Errorf("line owned by %s, want this test (%s): %s", f[1], pid, l)
		}
	}
}

func TestTraceJSON(t *testing.T) {
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	r := startSocklife(t, nil, "trace", "-o", "json", "--sport", port, "--state", "close-wait", "--comm", "socklife.test", "--count", "1")
	loopbackConn(t, ln)
	// --count 1: it stops by itself after the accepted side enters CLOSE_WAIT.
	r.waitOK(t, 10*time.Second)
	r.checkSummary(t, 1)
	var ev map[string]any
	if err := json.Unmarshal(r.stdout.Bytes(), &ev); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.stdout.String())
	}
	for key, want := range map[string]any{
		"kind": "state", "old": "ESTABLISHED", "new": "CLOSE_WAIT", "family": "inet",
		"local": "127.0.0.1:" + port, "owner_source": "task", "close": nil, "accept": nil,
	} {
		if ev[key] != want {
			t.Errorf("%s = %v, want %v", key, ev[key], want)
		}
	}
	if owner, _ := ev["owner"].(map[string]any); owner["pid"] != float64(os.Getpid()) {
		t.Errorf("owner %v, want pid %d", ev["owner"], os.Getpid())
	}
	if ms, ok := ev["in_state_ms"].(float64); !ok || ms <= 0 {
		t.Errorf("in_state_ms = %v, want the time in ESTABLISHED", ev["in_state_ms"])
	}
}

// Without CAP_BPF and CAP_PERFMON: one line naming them, exit 1, nothing loaded.
func TestTraceNotRoot(t *testing.T) {
	testutil.RequireRoot(t) // to become someone else
	cmd := socklifeCmd(t, "trace")
	runAsNobody(t, cmd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("as nobody: %v, want exit status 1; stderr %q", err, stderr.String())
	}
	want := "socklife: missing capabilities CAP_BPF and CAP_PERFMON (run as root)\n"
	if stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

// A service listening before socklife starts: its connections' handshake
// transitions run in softirq and take their owner from the listener's, which
// trace names from a listing at start (no CLOSE->LISTEN was seen).
func TestTraceOlderListenerOwner(t *testing.T) {
	testutil.RequireRoot(t)
	for _, network := range []string{"tcp4", "plain tcp4"} {
		t.Run(network, func(t *testing.T) {
			var ln net.Listener
			var err error
			if network == "tcp4" {
				ln, err = net.Listen("tcp4", "127.0.0.1:0") // MPTCP, as Go servers listen
			} else {
				lc := net.ListenConfig{}
				lc.SetMultipathTCP(false)
				ln, err = lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
			r := startSocklife(t, nil, "trace", "-o", "json", "--sport", port, "--state", "syn-recv", "--count", "2")
			loopbackConn(t, ln)
			r.waitOK(t, 10*time.Second)
			for _, line := range strings.Split(strings.TrimSpace(r.stdout.String()), "\n") {
				var ev struct {
					Old, New    string
					OwnerSource string `json:"owner_source"`
					Owner       struct{ PID int }
				}
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("%v: %s", err, line)
				}
				if ev.OwnerSource != "listener" || ev.Owner.PID != os.Getpid() {
					t.Errorf("%s -> %s: owner %d (%s), want this test's %d from its listener", ev.Old, ev.New, ev.Owner.PID, ev.OwnerSource, os.Getpid())
				}
			}
		})
	}
}

// An ss expression after trace's flags keeps exactly the transitions whose
// socket it matches: here the client sides of connections to one of two
// listeners.
func TestTraceSSExpression(t *testing.T) {
	testutil.RequireRoot(t)
	want, other := testutil.PlainListener(t), testutil.PlainListener(t)
	wantPort := testutil.Port(want)
	// The second clause matches nothing: a server side's remote is
	// 127.0.0.1 or, in a child's LISTEN->SYN_RECV before 6.6, 0.0.0.0.
	r := startSocklife(t, nil, "trace", "-o", "json", "(", "dport", "=", ":"+strconv.Itoa(int(wantPort)), ")",
		"or", "(", "sport", "=", ":"+strconv.Itoa(int(wantPort)), "and", "dst", "10.0.0.0/8", ")")
	loopbackConn(t, other)
	loopbackConn(t, want)
	testutil.WaitFor(t, 10*time.Second, "the client's close", func() bool {
		return strings.Contains(r.stdout.String(), `"new":"CLOSE"`)
	})
	lines := traceLines(t, strings.Join(r.stop(t), "\n"))
	if len(lines) == 0 {
		t.Fatal("no lines")
	}
	for _, l := range lines {
		if remote := netip.MustParseAddrPort(l.Remote); remote.Port() != wantPort {
			t.Errorf("a line of another socket: %+v", l)
		}
	}
}

// A link-local connection keeps its zone, as ss shows it: in the table
// [fe80::1]%lo:P, in JSON [fe80::1%lo]:P (what netip.ParseAddrPort reads).
func TestTraceLinkLocalZone(t *testing.T) {
	ns := testutil.NamedNetns(t)
	var ln net.Listener
	testutil.InNetns(t, ns, func() {
		if _, err := testutil.AddLinkLocal(); err != nil {
			t.Fatal(err)
		}
		ln = testutil.Listen(t, "tcp6", "[fe80::1%lo]:0")
	})
	port := strconv.Itoa(int(testutil.Port(ln)))
	js := startSocklife(t, nil, "trace", "-o", "json", "--netns", filepath.Base(ns), "--sport", port)
	table := startSocklife(t, nil, "trace", "--netns", filepath.Base(ns), "--sport", port)
	testutil.InNetns(t, ns, func() { loopbackConn(t, ln) })
	testutil.WaitFor(t, 10*time.Second, "the server side's close in both", func() bool {
		return strings.Contains(js.stdout.String(), `"new":"CLOSE"`) && strings.Contains(table.stdout.String(), "-> CLOSE ")
	})
	lines := traceLines(t, strings.Join(js.stop(t), "\n"))
	for _, l := range lines {
		ap, err := netip.ParseAddrPort(l.Local)
		if err != nil || ap.Addr().Zone() != "lo" || ap.Addr().WithZone("") != netip.MustParseAddr("fe80::1") {
			t.Errorf("JSON local %q (%v), want [fe80::1%%lo]:%s", l.Local, err, port)
		}
	}
	if out := strings.Join(table.stop(t), "\n"); !strings.Contains(out, " [fe80::1]%lo:"+port+" ") {
		t.Errorf("table lacks [fe80::1]%%lo:%s:\n%s", port, out)
	}
}
