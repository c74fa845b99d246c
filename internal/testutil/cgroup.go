package testutil

// cgroup.go: containers as socklife sees them: cgroups named the way the
// runtimes name theirs, made in the host's cgroup v2 hierarchy, and a real
// process started inside one, listening, accepting and connecting.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/container"
)

// CgroupRoot is where the cgroup v2 hierarchy is mounted here (pure v2:
// /sys/fs/cgroup; hybrid: /sys/fs/cgroup/unified). It fails the test
// where there is none.
func CgroupRoot(tb testing.TB) string {
	tb.Helper()
	h, err := container.FindHierarchy()
	if err != nil {
		tb.Fatalf("cgroup v2 hierarchy: %v", err)
	}
	return h.Mount
}

// Resolver resolves this host's cgroup ids (root: open_by_handle_at);
// closed when the test ends.
func Resolver(tb testing.TB) *container.Resolver {
	tb.Helper()
	RequireRoot(tb)
	h, err := container.FindHierarchy()
	if err != nil {
		tb.Fatal(err)
	}
	r, err := container.NewResolver(h)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// Cgroup makes the cgroup at path below the hierarchy's root, with its
// parents, and returns its directory and id (its inode). What the test
// made is removed when it ends, deepest first, after the processes in it
// have gone (the test's Cleanups that stop them run before, being later).
func Cgroup(tb testing.TB, path string) (dir string, id uint64) {
	tb.Helper()
	root := CgroupRoot(tb)
	dir = filepath.Join(root, path)
	var made []string
	for d := dir; d != root; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		made = append(made, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatalf("making cgroup %s: %v", path, err)
	}
	tb.Cleanup(func() {
		for _, d := range made { // deepest first
			removeCgroup(tb, d)
		}
	})
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		tb.Fatal(err)
	}
	return dir, st.Ino
}

// removeCgroup removes an empty cgroup, waiting for exited processes to
// leave it (the kernel empties it as their last task is reaped).
func removeCgroup(tb testing.TB, dir string) {
	deadline := time.Now().Add(Scaled(10 * time.Second))
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			tb.Errorf("removing cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// InCgroup runs fn with the calling process moved into the cgroup dir,
// then moves it back to the one it was in: what fn creates (a socket)
// was created in that cgroup, and is then held by a process outside it.
func InCgroup(tb testing.TB, dir string, fn func()) {
	tb.Helper()
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		tb.Fatal(err)
	}
	var back string
	for line := range strings.Lines(string(data)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			back = filepath.Join(CgroupRoot(tb), p)
		}
	}
	if back == "" {
		tb.Fatal("no cgroup v2 line in /proc/self/cgroup")
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pid, 0); err != nil {
		tb.Fatalf("moving into %s: %v", dir, err)
	}
	defer func() {
		if err := os.WriteFile(filepath.Join(back, "cgroup.procs"), pid, 0); err != nil {
			tb.Fatalf("moving back to %s: %v", back, err)
		}
	}()
	fn()
}

// workloadEnv carries the command name of a "workload" helper.
const workloadEnv = "SOCKLIFE_TESTUTIL_WORKLOAD"

// Workload is a process started inside a cgroup: a server that listens on
// 127.0.0.1 and accepts every connection and keeps it (a peer that closes
// leaves it in CLOSE_WAIT), and a client that connects where it is told
// and closes when told.
type Workload struct {
	PID  int
	Port uint16 // its listener's
	p    *helperProc
}

// StartWorkload starts a workload named comm in the cgroup dir, born there
// (clone3's CLONE_INTO_CGROUP), so that every socket it makes is the
// cgroup's from the start; with ownNetns, in a network namespace of its
// own, as a pod's processes are (loopback down: it listens, nothing
// reaches it). It exits when the test ends.
func StartWorkload(tb testing.TB, dir, comm string, ownNetns bool) *Workload {
	tb.Helper()
	cg, err := os.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer cg.Close()
	attr := &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	if ownNetns {
		attr.Cloneflags = syscall.CLONE_NEWNET
	}
	p, err := startHelperWith("workload", "workload", attr, workloadEnv+"="+comm)
	if err != nil {
		tb.Fatalf("in %s: %v", dir, err)
	}
	tb.Cleanup(p.stop)
	port, err := p.waitReady(time.After(Scaled(helperReadyWithin)))
	if err != nil {
		tb.Fatal(err)
	}
	return &Workload{PID: p.pid(), Port: port, p: p}
}

// Connect has the workload connect to 127.0.0.1:port and keep the
// connection; it returns the workload's local port once connected.
func (w *Workload) Connect(tb testing.TB, port uint16) uint16 {
	tb.Helper()
	local, err := strconv.ParseUint(strings.TrimPrefix(w.ask(tb, "connect "+strconv.Itoa(int(port))), "connected "), 10, 16)
	if err != nil {
		tb.Fatalf("workload connect: %v", err)
	}
	return uint16(local)
}

// CloseAll has the workload close every connection it made.
func (w *Workload) CloseAll(tb testing.TB) {
	tb.Helper()
	w.ask(tb, "close")
}

// ask sends the workload a command and returns its answer, waiting a
// minute at most.
func (w *Workload) ask(tb testing.TB, command string) string {
	tb.Helper()
	if _, err := fmt.Fprintln(w.p.stdin, command); err != nil {
		tb.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		l, _ := w.p.out.ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		if strings.HasPrefix(l, "error ") || l == "" {
			tb.Fatalf("workload %q: %q", command, l)
		}
		return l
	case <-time.After(Scaled(helperReadyWithin)):
		tb.Fatalf("workload %q: no answer after %v", command, Scaled(helperReadyWithin))
	}
	return ""
}
