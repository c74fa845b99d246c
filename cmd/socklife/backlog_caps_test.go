package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/testutil"
)

// With CAP_BPF and CAP_PERFMON but not root, the accept tracepoint fails on
// tracefs's permissions: backlog says so, not that the kernel has no hook.
// fexit and the kprobe are disabled so that the tracepoint is what is
// tried on every kernel (where fexit loads, it needs no tracefs).
func TestBacklogSaysWhyAcceptFailed(t *testing.T) {
	testutil.RequireRoot(t)
	cmd := socklifeCmd(t, "backlog", "--for", "1s", "--disable-hook", "fexit", "--disable-hook", "kretprobe")
	runAsNobody(t, cmd)
	cmd.SysProcAttr.AmbientCaps = []uintptr{unix.CAP_BPF, unix.CAP_PERFMON}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("backlog as nobody with CAP_BPF+CAP_PERFMON: %v, want exit status 1; stderr %q", err, stderr.String())
	}
	last := strings.TrimSpace(stderr.String())
	last = last[strings.LastIndex(last, "\n")+1:]
	if !strings.Contains(last, "no hook for accept() attached") || !strings.Contains(last, "tracepoint: permission denied on tracefs (") ||
		strings.Contains(last, "on this kernel") {
		t.Errorf("last line %q, want the tracepoint's permission error on tracefs", last)
	}
}
