package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/socklife/socklife/internal/testutil"
)

// Without the rights to load programs, info answers with one line and
// nothing on stdout: not half a report.
func TestInfoNotRootIsOneLine(t *testing.T) {
	testutil.RequireRoot(t) // to become someone else
	for _, format := range []string{"table", "json"} {
		cmd := socklifeCmd(t, "info", "-o", format)
		runAsNobody(t, cmd)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("-o %s as nobody: %v, want exit status 1", format, err)
		}
		if stdout.Len() != 0 || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "CAP_BPF") {
			t.Errorf("-o %s as nobody: stdout %q, stderr %q; want nothing and one line naming the capability", format, stdout.String(), stderr.String())
		}
	}
}

// A write that fails (a full disk) is an error, not a silent exit 0.
func TestInfoWriteErrorFails(t *testing.T) {
	testutil.RequireRoot(t)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	cmd := socklifeCmd(t, "info")
	cmd.Stdout = full
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "no space left") {
		t.Errorf("info > /dev/full: %v, stderr %q; want exit status 1 naming the error", err, stderr.String())
	}
}
