package testutil

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing the test with what if it still
// does not after timeout. It backs off from 1 ms to 50 ms between polls, so a
// fast condition is seen quickly and a slow one does not eat a core.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
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
