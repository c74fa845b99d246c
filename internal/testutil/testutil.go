// Package testutil holds helpers shared by socklife's tests.
package testutil

import (
	"os"
	"testing"
)

// RequireRoot skips the test unless it runs as root. The tests that call it
// use real sockets in other namespaces, BPF or other processes' /proc
// entries: root is the one capability they need and may lack on a laptop.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF): run the tests with sudo")
	}
}
