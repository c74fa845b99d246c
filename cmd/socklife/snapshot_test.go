package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/testutil"
)

// listenTCP opens a listener owned by this test process and returns its port.
func listenTCP(t *testing.T, network, addr string) int {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func TestSnapshotListenerJSON(t *testing.T) {
	testutil.RequireRoot(t)
	port := listenTCP(t, "tcp4", "127.0.0.1:0")
	stdout, stderr, code := runCLI(t, "snapshot", "-tl", "--sport", strconv.Itoa(port), "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var socks []render.SocketJSON
	if err := json.Unmarshal([]byte(stdout), &socks); err != nil {
		t.Fatalf("output is not a JSON array: %v\n%s", err, stdout)
	}
	if len(socks) != 1 {
		t.Fatalf("got %d sockets for port %d, want 1: %s", len(socks), port, stdout)
	}
	s := socks[0]
	if s.Netid != "tcp" || s.State != "LISTEN" || s.Local != "127.0.0.1:"+strconv.Itoa(port) || int(s.LocalPort) != port || s.Family != "inet" {
		t.Errorf("socket = %+v", s)
	}
	if s.Processes == nil || len(*s.Processes) != 1 || int((*s.Processes)[0].PID) != os.Getpid() {
		t.Errorf("processes = %+v, want this test (pid %d)", s.Processes, os.Getpid())
	}
	if s.SendQ == 0 {
		t.Errorf("send_q (backlog) = 0 for a listener")
	}
}

func TestSnapshotTableLikeSS(t *testing.T) {
	testutil.RequireRoot(t)
	port := listenTCP(t, "tcp6", "[::1]:0")
	stdout, stderr, code := runCLI(t, "snapshot", "-tl", "--sport", strconv.Itoa(port))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and one row, got:\n%s", stdout)
	}
	for _, col := range []string{"Netid", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %q", lines[0], col)
		}
	}
	wantUsers := `users:(("` + comm(t) + `",pid=` + strconv.Itoa(os.Getpid()) + `,fd=`
	fields := strings.Fields(lines[1])
	if fields[0] != "tcp" || fields[1] != "LISTEN" || fields[4] != "[::1]:"+strconv.Itoa(port) || fields[5] != "[::]:*" ||
		!strings.HasPrefix(fields[6], wantUsers) {
		t.Errorf("row = %q, want tcp LISTEN ... [::1]:%d [::]:* %s...", lines[1], port, wantUsers)
	}
}

func TestSnapshotExposed(t *testing.T) {
	testutil.RequireRoot(t)
	loopback := listenTCP(t, "tcp4", "127.0.0.1:0")
	wildcard := listenTCP(t, "tcp4", "0.0.0.0:0")
	stdout, stderr, code := runCLI(t, "snapshot", "--exposed", "-o", "ndjson")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var e render.ExposureJSON
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("bad ndjson line %q: %v", line, err)
		}
		if int(e.LocalPort) == loopback {
			t.Errorf("loopback listener on %d listed as exposed: %s", loopback, line)
		}
		if int(e.LocalPort) == wildcard {
			found = true
			if e.Scope != "wildcard" || e.Netid != "tcp" || e.Processes == nil || int((*e.Processes)[0].PID) != os.Getpid() {
				t.Errorf("exposure = %s", line)
			}
		}
	}
	if !found {
		t.Errorf("wildcard listener on %d not listed:\n%s", wildcard, stdout)
	}
}

func comm(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Without root the dump still works, and stderr says that other users'
// owners are hidden instead of leaving the Process column silently blank.
func TestSnapshotNotRootSaysOwnersHidden(t *testing.T) {
	testutil.RequireRoot(t) // to own a socket nobody may not inspect
	port := listenTCP(t, "tcp4", "127.0.0.1:0")
	cmd := socklifeCmd(t, "snapshot", "-tl", "--sport", strconv.Itoa(port))
	runAsNobody(t, cmd)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("as nobody: %v; stderr %q", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "127.0.0.1:"+strconv.Itoa(port)) || strings.Contains(lines[1], "users:") {
		t.Errorf("stdout = %q, want the listener without an owner", stdout.String())
	}
	if !strings.Contains(stderr.String(), "of other users are hidden: run as root") || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr = %q, want one note that owners are hidden", stderr.String())
	}
}

// Without root, --all-netns lists this namespace and says, once, that the
// others could not be entered; it does not fail.
func TestSnapshotAllNetnsNotRoot(t *testing.T) {
	testutil.NamedNetns(t)
	cmd := socklifeCmd(t, "snapshot", "-tl", "--all-netns", "--no-process")
	runAsNobody(t, cmd)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("as nobody: %v; stderr %q", err, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "Netid") {
		t.Errorf("stdout = %q, want the table of this namespace", stdout.String())
	}
	if !strings.Contains(stderr.String(), "other network namespaces skipped: entering them needs CAP_SYS_ADMIN") {
		t.Errorf("stderr = %q, want a note about the skipped namespaces", stderr.String())
	}
}

// The family and type flags combine as with ss: -4/-6 name the internet
// family (all its types unless -t or -u narrow it) and add to -x.
func TestSnapshotFamilyFlagsLikeSS(t *testing.T) {
	type kinds struct{ tcp, udp, unix, v4, v6 bool }
	for _, tc := range []struct {
		flags  snapshotFlags
		family string // -4, -6 or none
		want   kinds
	}{
		{snapshotFlags{}, "", kinds{true, true, true, true, true}},
		{snapshotFlags{}, "-4", kinds{true, true, false, true, false}},
		{snapshotFlags{udp: true}, "-6", kinds{false, true, false, false, true}},
		{snapshotFlags{unix: true}, "", kinds{false, false, true, true, true}},
		{snapshotFlags{unix: true}, "-4", kinds{true, true, true, true, false}},
		{snapshotFlags{tcp: true, unix: true}, "-4", kinds{true, false, true, true, false}},
		{snapshotFlags{tcp: true}, "", kinds{true, false, false, true, true}},
	} {
		tc.flags.output = "table"
		fs := pflag.NewFlagSet("snapshot", pflag.ContinueOnError)
		tc.flags.filter.Register(fs, "")
		if err := fs.Parse(strings.Fields(tc.family)); err != nil {
			t.Fatal(err)
		}
		p, err := planSnapshot(&tc.flags)
		if err != nil {
			t.Fatalf("%+v: %v", tc.flags, err)
		}
		got := kinds{p.dump.TCP, p.dump.UDP, p.dump.Unix, p.dump.IPv4, p.dump.IPv6}
		if got != tc.want {
			t.Errorf("%q -t %v -u %v -x %v: dump %+v, want %+v", tc.family, tc.flags.tcp, tc.flags.udp, tc.flags.unix, got, tc.want)
		}
	}
}

// -r names hosts and ports as ss -r does: a listener on 127.0.0.1 at a port
// /etc/services names reads the same in both (localhost:NAME on a usual
// host; numbers where the host has no such names, in both too).
func TestSnapshotResolveAsSS(t *testing.T) {
	testutil.RequireRoot(t)
	ln := listenOnNamedPort(t)
	port := strconv.Itoa(int(testutil.Port(ln)))
	out, stderr, code := runCLI(t, "snapshot", "-tlr", "--no-process", "sport", "=", ":"+port)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want the header and one listener:\n%s", out)
	}
	ours := strings.Fields(lines[1])[4]
	ssOut, err := exec.Command("ss", "-Htlr", "sport", "=", ":"+port).Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(ssOut))
	if len(f) < 4 {
		t.Fatalf("ss printed %q", ssOut)
	}
	if ours != f[3] {
		t.Errorf("snapshot -r: %s; ss -r: %s", ours, f[3])
	}
	t.Logf("both print %s", ours)
}

// listenOnNamedPort listens on 127.0.0.1 at the first free port above 1024
// that /etc/services names for TCP, or any port if none is free (or the
// file is missing).
func listenOnNamedPort(t *testing.T) net.Listener {
	t.Helper()
	if b, err := os.ReadFile("/etc/services"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || strings.HasPrefix(f[0], "#") || !strings.HasSuffix(f[1], "/tcp") {
				continue
			}
			if p, err := strconv.Atoi(strings.TrimSuffix(f[1], "/tcp")); err == nil && p > 1024 {
				var lc net.ListenConfig
				lc.SetMultipathTCP(false)
				if ln, err := lc.Listen(context.Background(), "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
					t.Cleanup(func() { ln.Close() })
					return ln
				}
			}
		}
	}
	return testutil.PlainListener(t)
}
