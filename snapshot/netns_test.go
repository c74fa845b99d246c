package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// namedNetns creates a network namespace the way `ip netns add` does and
// deletes it when the test ends.
func namedNetns(t *testing.T) (path string, inode uint32) {
	t.Helper()
	path = testutil.NamedNetns(t)
	ino, err := nsInode(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, ino
}

// listenIn opens a TCP listener on 0.0.0.0 inside the namespace at nsPath
// and returns its fd.
func listenIn(t *testing.T, nsPath string) int {
	t.Helper()
	fd := -1
	var err error
	testutil.InNetns(t, nsPath, func() {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	})
	if err != nil {
		t.Fatalf("creating a socket in %s: %v", nsPath, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return listenOn(t, fd, "0.0.0.0", 4)
}

// TestDumpAllNetns: a listener in a second namespace shows up with AllNetns,
// tagged with that namespace, and not without.
func TestDumpAllNetns(t *testing.T) {
	testutil.RequireRoot(t)
	path, nsIno := namedNetns(t)
	ln := listenIn(t, path)
	ino := fdInode(t, ln)
	byInode := func(s *Socket) bool { return s.Inode == ino && s.Protocol == TCP }

	opts := Options{TCP: true, IPv4: true, States: tcpstate.Of(tcpstate.Listen)}
	if res := mustDump(t, opts); containsSocket(res.Sockets, byInode) {
		t.Errorf("listener of namespace %d found without AllNetns", nsIno)
	}
	opts.AllNetns = true
	res := mustDump(t, opts)
	var found *Socket
	for i := range res.Sockets {
		if byInode(&res.Sockets[i]) {
			found = &res.Sockets[i]
		}
	}
	if found == nil {
		t.Fatalf("AllNetns: listener (inode %d) of namespace %d not found; namespaces %v", ino, nsIno, res.Namespaces)
	}
	if found.Netns != nsIno || found.State != tcpstate.Listen || found.SendQ != 4 {
		t.Errorf("AllNetns: listener netns %d state %v Send-Q %d, want %d LISTEN 4", found.Netns, found.State, found.SendQ, nsIno)
	}
	if !containsUint32(res.Namespaces, nsIno) || !containsUint32(res.Namespaces, selfNetns(t)) {
		t.Errorf("AllNetns: namespaces %v, want ours (%d) and %d", res.Namespaces, selfNetns(t), nsIno)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("AllNetns: warnings %q", res.Warnings)
	}
}

func TestListNamespacesDedupes(t *testing.T) {
	testutil.RequireRoot(t)
	_, nsIno := namedNetns(t)
	nss, err := listNamespaces()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]int{}
	for _, ns := range nss {
		seen[ns.inode]++
	}
	for ino, n := range seen {
		if n > 1 {
			t.Errorf("namespace %d listed %d times", ino, n)
		}
	}
	if seen[nsIno] != 1 || seen[selfNetns(t)] != 1 {
		t.Errorf("namespaces %v lack ours or the /run/netns one (%d)", nss, nsIno)
	}
}

// TestVanishedNamespaceWarns: a namespace gone between discovery and dump
// (its process exited, or the path now names another one) is a warning,
// and the rest of the snapshot still comes back.
func TestVanishedNamespaceWarns(t *testing.T) {
	testutil.RequireRoot(t)
	self := selfNetns(t)
	namespaces := []namespace{
		{inode: self, paths: []string{"/proc/self/ns/net"}},
		{inode: 1, paths: []string{"/proc/self/ns/net"}},       // path reused by another namespace
		{inode: 2, paths: []string{"/proc/2147483647/ns/net"}}, // process gone
	}
	opts := Options{TCP: true, States: tcpstate.All}
	jobs := planJobs(namespaces, opts.queries())
	runJobs(context.Background(), jobs, opts, self)
	res, err := gather(jobs, namespaces)
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "network namespace 1 ") {
		t.Errorf("warnings %q, want one per vanished namespace", res.Warnings)
	}
	if len(res.Namespaces) != 1 || res.Namespaces[0] != self {
		t.Errorf("namespaces %v, want only ours (%d)", res.Namespaces, self)
	}
}

// A namespace is reached by any path that still leads to it: the first
// one listed may name another namespace by the time it is opened (a
// process that entered the namespace for a moment, as ip netns exec,
// nsenter or another tool's thread do, and left it), and the walk must
// not call the namespace gone while its /run/netns name still holds it.
func TestNamespaceReachedByALaterPath(t *testing.T) {
	testutil.RequireRoot(t)
	path, ino := namedNetns(t)
	ns := namespace{inode: ino, paths: []string{
		"/proc/self/ns/net",       // ours now, not ino
		"/proc/2147483647/ns/net", // a process gone
		path,
	}}
	var in uint32
	err := runInNetns(ns, func() error {
		var err error
		in, err = nsInode("/proc/thread-self/ns/net")
		return err
	})
	if err != nil || in != ino {
		t.Errorf("runInNetns: ran in %d (%v), want %d through %s", in, err, ino, path)
	}

	ns.paths = ns.paths[:2]
	if err := runInNetns(ns, func() error { return nil }); !errors.Is(err, errNamespaceGone) {
		t.Errorf("no path leads to it: %v, want %v", err, errNamespaceGone)
	}
}

// The listing puts a namespace's /run/netns name before the processes in
// it: a name lasts until ip netns del, a process in it may leave at any
// time. Both are kept, so either can be tried.
func TestListNamespacesNamedFirst(t *testing.T) {
	testutil.RequireRoot(t)
	path, ino := namedNetns(t)
	var sleeper *exec.Cmd
	testutil.InNetns(t, path, func() {
		// started from this thread, the child is in its namespace
		sleeper = exec.Command("sleep", "60")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	procPath := fmt.Sprintf("/proc/%d/ns/net", sleeper.Process.Pid)
	if got, err := nsInode(procPath); err != nil || got != ino {
		t.Fatalf("the sleeper is in %d (%v), want %d", got, err, ino)
	}
	nss, err := listNamespaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss {
		if ns.inode != ino {
			continue
		}
		if len(ns.paths) < 2 || ns.paths[0] != path || !slices.Contains(ns.paths, procPath) {
			t.Errorf("namespace %d: paths %q, want %s first and %s among them", ino, ns.paths, path, procPath)
		}
		return
	}
	t.Errorf("namespace %d not listed: %v", ino, nss)
}

func containsUint32(xs []uint32, x uint32) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// A namespace that vanishes while EachNetns walks (here: deleted, as `ip
// netns del` does, by fn in the namespace before it) is skipped with a
// warning, and the walk goes on: serve's census under namespace churn.
func TestEachNetnsSkipsVanished(t *testing.T) {
	testutil.RequireRoot(t)
	a, ia := namedNetns(t)
	b, ib := namedNetns(t)
	// the walk goes by inode: delete the later one from the earlier
	later, laterIno, earlierIno := b, ib, ia
	if ib < ia {
		later, laterIno, earlierIno = a, ia, ib
	}
	var seen []uint32
	warnings, err := EachNetns(func(inode uint32) error {
		seen = append(seen, inode)
		if inode == earlierIno {
			if err := unix.Unmount(later, unix.MNT_DETACH); err != nil {
				return err
			}
			return os.Remove(later)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("EachNetns: %v", err)
	}
	if !containsUint32(seen, earlierIno) || containsUint32(seen, laterIno) {
		t.Errorf("fn ran in %v: want %d and not the deleted %d", seen, earlierIno, laterIno)
	}
	if !containsUint32(seen, selfNetns(t)) {
		t.Errorf("fn ran in %v: not in ours", seen)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], fmt.Sprintf("network namespace %d ", laterIno)) {
		t.Errorf("warnings %q, want one for the deleted namespace %d", warnings, laterIno)
	}
}
