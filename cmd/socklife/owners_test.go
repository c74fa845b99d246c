package main

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
)

// holdInChild moves sockets to a child process (a sleep that holds them as
// inherited fds) and closes this process's copies: the child is then their
// only owner. It returns the child's pid; the test's end kills it.
func holdInChild(t *testing.T, socks ...interface{ File() (*os.File, error) }) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sleep, "600")
	for _, s := range socks {
		f, err := s.File() // a dup: closing s leaves it open
		if err != nil {
			t.Fatal(err)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		s.(interface{ Close() error }).Close()
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// Sockets older than trace, held by another process: a transition in
// softirq (the peer's FIN, run here in the test, the peer) names the owner
// trace found in its start-up snapshot, as record does; transitions inside
// the owner (its exit closes everything: a listener's LISTEN->CLOSE, an
// SO_LINGER-0 abort's ESTABLISHED->CLOSE, a close in CLOSE_WAIT) name it as
// the running task.
func TestTraceOwnersOfOlderSockets(t *testing.T) {
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	peerClosed, closeWait := testutil.Pair(t, ln)
	_, aborted := testutil.Pair(t, ln)
	if err := aborted.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	closeWaitPort := clientPort(peerClosed.LocalAddr().String())
	abortedPort := clientPort(aborted.RemoteAddr().String())
	child := holdInChild(t, ln.(*net.TCPListener), closeWait, aborted)
	owner := child.Process.Pid

	out := &testutil.SyncBuffer{}
	run := startSocklife(t, out, "trace", "-o", "json", "--sport", strconv.Itoa(int(port)))
	peerClosed.Close()
	find := func(remote uint16, old, new string) *traceLine {
		for _, l := range traceLines(t, linesSoFar(out.String())) {
			if clientPort(l.Remote) == remote && l.Old == old && l.New == new {
				return &l
			}
		}
		return nil
	}
	testutil.WaitFor(t, 5*time.Second, "ESTABLISHED->CLOSE_WAIT", func() bool { return find(closeWaitPort, "ESTABLISHED", "CLOSE_WAIT") != nil })
	child.Process.Kill()
	child.Wait()
	testutil.WaitFor(t, 5*time.Second, "the closes of the owner's exit", func() bool {
		return find(0, "LISTEN", "CLOSE") != nil && find(abortedPort, "ESTABLISHED", "CLOSE") != nil &&
			find(closeWaitPort, "CLOSE_WAIT", "LAST_ACK") != nil
	})
	run.stop(t)
	for _, tc := range []struct {
		remote   uint16
		old, new string
		source   string
	}{
		{closeWaitPort, "ESTABLISHED", "CLOSE_WAIT", "snapshot"},
		{0, "LISTEN", "CLOSE", "task"},
		{abortedPort, "ESTABLISHED", "CLOSE", "task"},
		{closeWaitPort, "CLOSE_WAIT", "LAST_ACK", "task"},
	} {
		l := find(tc.remote, tc.old, tc.new)
		if l.ownerPID() != owner || l.OwnerSource != tc.source {
			t.Errorf("%s->%s: owner %d (%s), want the child %d (%s)", tc.old, tc.new, l.ownerPID(), l.OwnerSource, owner, tc.source)
		}
	}
}
