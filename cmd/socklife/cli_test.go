package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
		for d := dir; d != filepath.Dir(d) && !othersCanRun(d); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
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
