package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/socklife/socklife/internal/testutil"
)

// The ready file is written as root, often in /tmp: a symlink planted there
// is not followed, a device is not written, a regular file gets the pid.
func TestReadyFileRefusesLinksAndDevices(t *testing.T) {
	dir := t.TempDir()
	link, target := testutil.PlantLink(t, dir, "keep\n", -1)
	if err := writeReadyFile(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("through a symlink: %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep\n" {
		t.Errorf("the link's target now holds %q", b)
	}
	if err := writeReadyFile("/dev/null"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a device: %v, want a refusal", err)
	}
	ready := filepath.Join(dir, "ready")
	if err := os.WriteFile(ready, []byte("an old, longer content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeReadyFile(ready); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(ready); string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("ready file holds %q, want the pid", b)
	}
}
