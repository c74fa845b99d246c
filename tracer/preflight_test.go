package tracer

import (
	"path/filepath"
	"strings"
	"testing"
)

// A kernel without BTF: one line naming the file and the option to build with.
func TestCheckBTFMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "vmlinux")
	err := checkBTF(missing)
	if err == nil {
		t.Fatal("no error for a missing BTF file")
	}
	msg := err.Error()
	if !strings.Contains(msg, missing) || !strings.Contains(msg, "CONFIG_DEBUG_INFO_BTF") || strings.Contains(msg, "\n") {
		t.Errorf("error %q, want one line naming %s and CONFIG_DEBUG_INFO_BTF", msg, missing)
	}
	if err := checkBTF(BTFPath); err != nil {
		t.Errorf("this kernel has BTF, yet: %v", err)
	}
}
