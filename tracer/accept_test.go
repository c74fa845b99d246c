package tracer

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// blockedAccept is a thread parked in a blocking accept4() on a listener of
// its own, and what that accept returns.
type blockedAccept struct {
	fd   int
	port uint16
	tid  int
	done chan error
}

// startBlockedAccept listens on loopback (blocking socket, backlog 8) and
// parks a locked OS thread in accept4(), returning once /proc shows it in
// that syscall.
func startBlockedAccept(t *testing.T) *blockedAccept {
	t.Helper()
	fd, port := testutil.RawListener(t, [4]byte{127, 0, 0, 1}, 0, 8)
	b := &blockedAccept{fd: fd, port: port, done: make(chan error, 1)}
	tids := make(chan int, 1)
	go func() {
		// The thread dies with the goroutine (never unlocked): it was
		// blocked in a syscall the test wants to see exactly once.
		runtime.LockOSThread()
		tids <- unix.Gettid()
		nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err == nil {
			unix.Close(nfd)
		}
		b.done <- err
	}()
	b.tid = <-tids
	testutil.WaitFor(t, 5*time.Second, "the thread to block in accept4", func() bool {
		return inSyscall(b.tid, unix.SYS_ACCEPT4)
	})
	return b
}

// inSyscall reads /proc/self/task/TID/syscall: its first field is the
// number of the syscall the thread is blocked in.
func inSyscall(tid int, nr uintptr) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/syscall", tid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(raw))
	return len(fields) > 0 && fields[0] == strconv.FormatUint(uint64(nr), 10)
}

// A thread already blocked in accept4() when the tracer attached never ran
// sys_enter under it: on the syscall-tracepoint rung (forced here, on every
// kernel) its accept must still be reported, and since 5.15, when the exit
// reads the listener's fd from the saved registers, with its listener.
// fexit and the kretprobe miss such calls (their trampoline and return probe
// only see calls that enter after them); see bpf/README.md.
func TestAcceptBlockedBeforeStart(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		entry bool
	}{{"exit", false}, {"entry and exit", true}} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.entry && features.HaveProgramHelper(ebpf.TracePoint, asm.FnTaskPtRegs) != nil {
				t.Skip("kernel before 5.15: no bpf_task_pt_regs, the entry is hooked too")
			}
			acceptBlockedBeforeStart(t, tc.entry)
		})
	}
}

func acceptBlockedBeforeStart(t *testing.T, entry bool) {
	b := startBlockedAccept(t)
	col := startTracer(t, Options{Ports: []uint16{b.port}, DisableHooks: []string{"fexit", "kretprobe"}, syscallEntry: entry})
	client, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(b.port))))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	select {
	case err := <-b.done:
		if err != nil {
			t.Fatalf("accept4: %v", err)
		}
	case <-time.After(testutil.Scaled(5 * time.Second)):
		t.Fatal("accept4 did not return")
	}
	clientPort := uint16(client.LocalAddr().(*net.TCPAddr).Port)
	var accepts []Event
	testutil.WaitFor(t, 5*time.Second, "the accept event", func() bool {
		accepts = accepts[:0]
		for _, ev := range col.snapshot(b.port) {
			if ev.Kind == Accept {
				accepts = append(accepts, ev)
			}
		}
		return len(accepts) > 0
	})
	if len(accepts) != 1 {
		t.Fatalf("%d accept events, want 1", len(accepts))
	}
	ev := accepts[0]
	if ev.Local.Port() != b.port || ev.Remote.Port() != clientPort {
		t.Errorf("accepted %s <- %s, want port %d <- client port %d", ev.Local, ev.Remote, b.port, clientPort)
	}
	if ev.Current.PID != uint32(os.Getpid()) || ev.Owner.PID != uint32(os.Getpid()) || ev.OwnerSource != OwnerTask {
		t.Errorf("accept by %d, owner %d (%s), want this process %d", ev.Current.PID, ev.Owner.PID, ev.OwnerSource, os.Getpid())
	}
	if ev.Local.Port() != b.port {
		t.Errorf("listener port %d, want %d", ev.Local.Port(), b.port)
	}
	// The handshake happened under the tracer: the queue wait is known.
	if !ev.InStateKnown {
		t.Errorf("accept wait unknown")
	}
	if ev.Hook != HookSyscallTracepoint {
		t.Errorf("accept event from %s, want the syscall tracepoint", ev.Hook)
	}
	// the listener predates the tracer: only the registers can name it
	if !entry && (!ev.Queue.Known || ev.Queue.Listener == 0 || ev.Queue.Backlog != 8) {
		t.Errorf("accept of a call blocked before start: listener known %v (%#x, backlog %d), want it known, backlog 8",
			ev.Queue.Known, ev.Queue.Listener, ev.Queue.Backlog)
	}
	// and the next accept, entered under the tracer, is reported once,
	// with its listener
	checkNextAccept(t, col, b)
}

// checkNextAccept accepts once more on b's listener from a fresh call and
// expects exactly one event for it, naming the listener.
func checkNextAccept(t *testing.T, col *collector, b *blockedAccept) {
	t.Helper()
	client, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(b.port))))
	if err != nil {
		t.Fatal(err)
	}
	nfd, _, err := unix.Accept4(b.fd, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nfd)
	clientPort := uint16(client.LocalAddr().(*net.TCPAddr).Port)
	// The ring is in reservation order: once the client's close, which
	// follows accept4's return, has been read, so has any duplicate.
	client.Close()
	var n int
	var ev Event
	testutil.WaitFor(t, 5*time.Second, "the client's close after the second accept", func() bool {
		n = 0
		closed := false
		for _, e := range col.snapshot(b.port) {
			switch {
			case e.Kind == Accept && e.Remote.Port() == clientPort:
				n, ev = n+1, e
			case e.Kind == StateChange && e.Local.Port() == clientPort && e.New == tcpstate.FinWait1:
				closed = true
			}
		}
		return closed
	})
	if n != 1 || ev.Hook != HookSyscallTracepoint || !ev.Queue.Known {
		t.Errorf("second accept: %d events, hook %s, listener known %v; want 1 from the syscall tracepoint, listener known",
			n, ev.Hook, ev.Queue.Known)
	}
}
