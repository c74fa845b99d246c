package main

import (
	"bytes"
	"errors"
	"fmt"
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
	if bpfMemlockCharged(t) {
		// before 5.11 BPF memory counts against RLIMIT_MEMLOCK, which
		// only CAP_SYS_RESOURCE may lift: without it nothing loads, and
		// the tracefs question is never reached
		cmd.SysProcAttr.AmbientCaps = append(cmd.SysProcAttr.AmbientCaps, unix.CAP_SYS_RESOURCE)
	}
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

// bpfMemlockCharged says whether this kernel charges BPF maps to
// RLIMIT_MEMLOCK: before 5.11 (memcg accounting since).
func bpfMemlockCharged(t *testing.T) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	return major < 5 || major == 5 && minor < 11
}
