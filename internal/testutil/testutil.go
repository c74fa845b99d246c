// Package testutil holds helpers shared by socklife's tests.
package testutil

import (
	"os"
	"strconv"
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

// EnvInt is a benchmark's knob: the positive integer in the environment
// variable name, or def when it is unset.
func EnvInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		tb.Fatalf("bad %s %q: want a positive integer", name, s)
	}
	return n
}
