package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
)

// fakeQEMU puts a qemu-system-x86_64 on PATH that runs script instead of
// a guest, so the watchdog's verdicts can be tested without booting.
func fakeQEMU(t *testing.T, script string) vmSpec {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "qemu-system-x86_64")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return vmSpec{
		Accel: "tcg", ConsoleLog: filepath.Join(dir, "console.log"), ResultsFile: filepath.Join(dir, "tests.log"),
		MemMB: 64, CPUs: 1, Timeout: 10 * time.Second,
	}
}

func TestBootVMVerdicts(t *testing.T) {
	// Long enough for the fake's shell to print its first line, also when
	// this test runs in an emulated kernel-matrix VM.
	short := testutil.Scaled(300 * time.Millisecond)
	tests := []struct {
		name      string
		script    string
		timeout   time.Duration
		upTimeout time.Duration
		problem   string // "" for a clean boot
	}{
		{name: "clean", script: "echo 'socklife-vmtest: up'\necho '[ 1.0] reboot: Power down'\n"},
		{name: "panic", script: "echo 'socklife-vmtest: up'\necho '[ 2.0] Kernel panic - not syncing: Fatal exception'\nexit 0\n",
			problem: "kernel panic; console's last line: [ 2.0] Kernel panic - not syncing: Fatal exception"},
		{name: "hang", script: "echo 'socklife-vmtest: up'\nexec sleep 60\n", timeout: short,
			problem: fmt.Sprintf("hung: no end after %v; console's last line: socklife-vmtest: up", short)},
		// What this project's KVM does: the guest never runs.
		{name: "kvm hangs", script: "echo 'KVM internal error. Suberror: 1'\nexec sleep 60\n", upTimeout: short,
			problem: "the guest did not start in time; console's last line: KVM internal error. Suberror: 1"},
		{name: "kvm aborts", script: "echo 'kvm_buf_set_msrs: Assertion failed.' >&2\nkill -ABRT $$\n", upTimeout: 5 * time.Second,
			problem: "qemu: signal: aborted; console's last line: kvm_buf_set_msrs: Assertion failed."},
		{name: "init never started", script: "echo 'VFS: Cannot open root device'\n",
			problem: "the guest never started /init; console's last line: VFS: Cannot open root device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := fakeQEMU(t, tt.script)
			if tt.timeout > 0 {
				spec.Timeout = tt.timeout
			}
			spec.UpTimeout = tt.upTimeout
			start := time.Now()
			ex := bootVM(context.Background(), spec)
			got := ex.problem(spec.Timeout)
			if !strings.HasPrefix(got, tt.problem) || (tt.problem == "" && got != "") {
				t.Errorf("problem %q, want %q", got, tt.problem)
			}
			if tt.problem == "" && (!ex.Up || ex.UpAfter <= 0 || ex.UpAfter > ex.Elapsed) {
				t.Errorf("clean boot: Up %v after %v, exit after %v", ex.Up, ex.UpAfter, ex.Elapsed)
			}
			if el := time.Since(start); el > testutil.Scaled(5*time.Second) {
				t.Errorf("bootVM took %v: the watchdog did not kill the fake qemu", el)
			}
			if log, err := os.ReadFile(spec.ConsoleLog); err != nil || !strings.Contains(string(log), strings.Split(tt.script, "'")[1]) {
				t.Errorf("console log %q (%v) lacks the guest's first line", log, err)
			}
		})
	}
}
