package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"
)

// These tests check files of the source tree. The kernel matrix's VMs get
// test binaries and testdata only (internal/cmd/vmtest), and none of the
// tools (promtool, podman): there, nothing here can run, and the host's run
// of the same tests is the one that counts.
func TestMain(m *testing.M) {
	if _, err := os.Stat("daemonset.yaml"); errors.Is(err, fs.ErrNotExist) {
		fmt.Println("deploy: no source tree here (a vmtest guest): nothing to check")
		os.Exit(0)
	}
	os.Exit(m.Run())
}
