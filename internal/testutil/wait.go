package testutil

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing the test with what if it still
// does not after timeout. It backs off from 1 ms to 50 ms between polls, so a
// fast condition is seen quickly and a slow one does not eat a core.
//
// SOCKLIFE_TEST_TIMEOUT_SCALE multiplies timeout: the kernel-matrix VMs run
// on an emulated CPU, where a deadline fit for real hardware is too short.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	timeout = Scaled(timeout)
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// Scaled stretches a test deadline by SOCKLIFE_TEST_TIMEOUT_SCALE (a whole
// number; 1 when unset or malformed).
func Scaled(d time.Duration) time.Duration {
	n, err := strconv.Atoi(os.Getenv("SOCKLIFE_TEST_TIMEOUT_SCALE"))
	if err != nil || n < 1 {
		return d
	}
	return d * time.Duration(n)
}
