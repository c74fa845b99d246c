package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
)

// runCLI runs socklife in-process with args and returns stdout, stderr and
// the exit status main would have used.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	if err := root.ExecuteContext(context.Background()); err != nil {
		code = exitCode(err)
		errOut.WriteString("socklife: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), code
}

// runAsNobody makes cmd run as uid/gid 65534. go test builds the binary in a
// private directory, so it is copied where nobody may execute it.
func runAsNobody(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if !othersCanRun(cmd.Path) {
		b, err := os.ReadFile(cmd.Path)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		cmd.Path = filepath.Join(dir, "socklife")
		if err := os.WriteFile(cmd.Path, b, 0o755); err != nil {
			t.Fatal(err)
		}
		letOthersIn(t, dir)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
}

// letOthersIn makes dir and the directories above it searchable by other
// users (a test's temp dirs are 0700), for a command run as nobody.
func letOthersIn(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != filepath.Dir(d) && !othersCanRun(d); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// expectBadInput runs socklife with args and checks the answer to bad
// input: exit status 2, nothing on stdout, one line on stderr holding every
// one of wants.
func expectBadInput(t *testing.T, args []string, wants ...string) {
	t.Helper()
	stdout, stderr, code := runCLI(t, args...)
	if code != 2 {
		t.Errorf("%v: exit status %d, want 2", args, code)
	}
	if stdout != "" {
		t.Errorf("%v: stdout %q, want nothing", args, stdout)
	}
	if n := strings.Count(stderr, "\n"); n != 1 {
		t.Errorf("%v: stderr has %d lines, want 1: %q", args, n, stderr)
	}
	for _, w := range wants {
		if !strings.Contains(stderr, w) {
			t.Errorf("%v: stderr %q does not contain %q", args, stderr, w)
		}
	}
}

// socklifeRun is a socklife command running in the background. Only the
// goroutine startSocklife starts calls cmd.Wait; everyone else learns its
// answer from exited and err.
type socklifeRun struct {
	name           string // "socklife trace", for messages
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer  // stdout unless startSocklife was given another
	exited         chan struct{} // closed once cmd.Wait has returned
	err            error         // cmd.Wait's, once exited is closed
}

// startSocklife starts `socklife args...` (args[0] the subcommand; this test
// binary as main, see socklifeCmd) with --ready-file and disableHookArgs,
// and returns once it has written its ready file: everything attached. If
// it exits first, the test fails with its stderr. Its output goes to
// r.stdout, or to stdout if that is not nil. The test's end kills it.
func startSocklife(t testing.TB, stdout io.Writer, args ...string) *socklifeRun {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	r := &socklifeRun{name: "socklife " + args[0], exited: make(chan struct{})}
	r.cmd = socklifeCmd(t, slices.Concat(args, []string{"--ready-file", ready}, disableHookArgs())...)
	if stdout == nil {
		stdout = &r.stdout
	}
	r.cmd.Stdout, r.cmd.Stderr = stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.exited })
	testutil.WaitFor(t, 20*time.Second, r.name+" to attach", func() bool {
		t.Helper()
		gone := false
		select {
		case <-r.exited:
			gone = true // so the ready file is there now or never
		default:
		}
		_, err := os.Stat(ready)
		if err != nil && gone {
			t.Fatalf("socklife %v ended before attaching: %v; stderr %q", args, r.err, r.stderr.String())
		}
		return err == nil
	})
	return r
}

// wait waits for the command's end and returns what cmd.Wait said. After
// timeout (scaled, see testutil.Scaled) it sends SIGQUIT and fails the test.
func (r *socklifeRun) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-r.exited:
		return r.err
	case <-time.After(testutil.Scaled(timeout)):
		r.cmd.Process.Signal(syscall.SIGQUIT)
		t.Fatalf("%s still running after %v; stderr %q", r.name, timeout, r.stderr.String())
		return nil
	}
}

// waitOK waits as wait does and fails the test unless the command exited 0.
func (r *socklifeRun) waitOK(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := r.wait(t, timeout); err != nil {
		t.Fatalf("%s: %v\nstderr: %s", r.name, err, r.stderr.String())
	}
}

// exitCode waits as wait does and returns the exit status.
func (r *socklifeRun) exitCode(t testing.TB, timeout time.Duration) int {
	t.Helper()
	err := r.wait(t, timeout)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// stop sends SIGTERM, checks the clean stop (exit 0 within 10 s) and
// returns the lines of r.stdout.
func (r *socklifeRun) stop(t testing.TB) (lines []string) {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	r.waitOK(t, 10*time.Second)
	sc := bufio.NewScanner(&r.stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// `socklife --version`, as ss -V and most tools take it, says what
// `socklife version` says.
func TestVersionFlag(t *testing.T) {
	flag, _, code := runCLI(t, "--version")
	cmd, _, code2 := runCLI(t, "version")
	if code != 0 || code2 != 0 || flag != cmd || !strings.HasPrefix(flag, "socklife ") {
		t.Errorf("--version: %q (exit %d); version: %q (exit %d)", flag, code, cmd, code2)
	}
}

// jsonLines decodes one JSON object a line (-o json of the streaming
// commands, -o ndjson); a line that is not one fails the test.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%v: %q", err, sc.Text())
		}
		vs = append(vs, v)
	}
	return vs
}
