package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// netnsRunDir is where `ip netns add` bind-mounts named namespaces, which
// may have no process in them at all.
const netnsRunDir = "/run/netns"

// namespace is one network namespace found on the host: its inode and
// the paths that led to it, the most lasting first (ours, then a
// /run/netns name, then processes in it). Any one may fail by the time it
// is opened: a process leaves the namespace (ip netns exec, nsenter, a
// thread of another tool that entered it for a moment) or exits. The
// namespace is gone only when none leads to it.
type namespace struct {
	inode uint32
	paths []string
}

// maxNamespacePaths bounds the paths kept per namespace: the host's has
// one per process, and a few fallbacks are enough.
const maxNamespacePaths = 4

// procDir is /proc/PID (or /proc/self) of a process in ns when the
// listing found one, for the counters the kernel keeps per namespace.
func (ns namespace) procDir() (string, bool) {
	for _, path := range ns.paths {
		if dir, ok := strings.CutSuffix(path, "/ns/net"); ok && strings.HasPrefix(dir, "/proc/") {
			return dir, true
		}
	}
	return "", false
}

// CurrentNetns returns the inode of the calling process's network namespace,
// the number `readlink /proc/self/ns/net` shows in brackets.
func CurrentNetns() (uint32, error) {
	return nsInode("/proc/self/ns/net")
}

func nsInode(path string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("reading network namespace %s: %w", path, err)
	}
	return uint32(st.Ino), nil
}

// listNamespaces finds every distinct network namespace: those of running
// processes (/proc/*/ns/net) and the named ones in /run/netns, deduplicated
// by inode and sorted by it. A process that exits during the walk is
// simply not seen; that is not an error.
func listNamespaces() ([]namespace, error) {
	return listNamespacesNoting(nil)
}

// listNamespacesNoting is listNamespaces, noting in pending (or SetNotes's
// function) what it skipped, the first time in this process; nil pending
// notes nothing.
func listNamespacesNoting(pending *[]string) ([]namespace, error) {
	index := make(map[uint32]int)
	var out []namespace
	add := func(path string) {
		ino, err := nsInode(path)
		if err != nil {
			return
		}
		i, ok := index[ino]
		if !ok {
			i = len(out)
			index[ino] = i
			out = append(out, namespace{inode: ino})
		}
		if len(out[i].paths) < maxNamespacePaths {
			out[i].paths = append(out[i].paths, path)
		}
	}
	// Our own first, so it is found even if /proc is odd.
	add("/proc/self/ns/net")
	// A name in /run/netns lasts until `ip netns del`, longer than most
	// processes in the namespace: it comes before them. A missing
	// /run/netns just means no named namespaces. An entry there that is
	// no namespace (a file `ip netns add` left before its bind mount, or
	// after its unmount, or anyone's `touch`) is not one to enter: only a
	// bind mount of a namespace is on nsfs.
	named, _ := os.ReadDir(netnsRunDir)
	for _, n := range named {
		path := filepath.Join(netnsRunDir, n.Name())
		if isNsfs(path) {
			add(path)
			continue
		}
		if info, err := n.Info(); pending != nil && err == nil && time.Since(info.ModTime()) > staleAfter {
			note("stale "+path, path+": not a network namespace (a file left behind?); skipped", pending)
		}
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes for network namespaces: %w", err)
	}
	for _, p := range procs {
		if name := p.Name(); name[0] >= '1' && name[0] <= '9' {
			add(filepath.Join("/proc", name, "ns/net"))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].inode < out[j].inode })
	return out, nil
}

// NetnsExists reports whether a network namespace with this inode is on
// the host now: one a process is in, or a name in /run/netns holds.
func NetnsExists(inode uint32) (bool, error) {
	all, err := listNamespaces()
	if err != nil {
		return false, err
	}
	for _, ns := range all {
		if ns.inode == inode {
			return true, nil
		}
	}
	return false, nil
}

// NamedNetns returns the inode of the namespace `ip netns add NAME` made
// (/run/netns/NAME).
func NamedNetns(name string) (uint32, error) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return 0, fmt.Errorf("no network namespace named %q", name)
	}
	path := filepath.Join(netnsRunDir, name)
	// A file left behind by a failed `ip netns add` is no namespace: only
	// a bind mount of one is on nsfs.
	if !isNsfs(path) {
		return 0, fmt.Errorf("no network namespace named %q in %s", name, netnsRunDir)
	}
	return nsInode(path)
}

// isNsfs reports whether path is a namespace (a bind mount of one, for a
// name in /run/netns), not a plain file.
func isNsfs(path string) bool {
	var fs unix.Statfs_t
	return unix.Statfs(path, &fs) == nil && fs.Type == unix.NSFS_MAGIC
}

// someNamespaces finds ours and the namespaces with these inodes, in
// inode order; an inode no process or /run/netns name leads to any more
// gets a warning.
func someNamespaces(self uint32, inodes []uint32) ([]namespace, []string, error) {
	var warnings []string
	all, err := listNamespacesNoting(&warnings)
	if err != nil {
		return nil, nil, err
	}
	want := map[uint32]bool{self: true}
	for _, ino := range inodes {
		want[ino] = true
	}
	var out []namespace
	for _, ns := range all {
		if want[ns.inode] {
			out = append(out, ns)
			delete(want, ns.inode)
		}
	}
	for _, ino := range inodes {
		if want[ino] {
			warnings = append(warnings, fmt.Sprintf("network namespace %d: no process or %s entry leads to it any more; skipped", ino, netnsRunDir))
			delete(want, ino)
		}
	}
	return out, warnings, nil
}

// errNamespaceGone marks a namespace that vanished between discovery and
// use: the caller warns and goes on.
var errNamespaceGone = errors.New("vanished during the walk")

// openDiagIn opens a sock_diag socket inside the namespace ns. The netlink
// socket stays bound to the namespace it was created in, so only socket()
// needs the thread to be there; the dumps then run from any thread.
func openDiagIn(ns namespace) (*diagConn, error) {
	var c *diagConn
	err := runInNetns(ns, func() error {
		var err error
		c, err = openDiag()
		return err
	})
	if err != nil && c != nil {
		c.Close() // the thread could not come back
		c = nil
	}
	return c, err
}

// RunInNetns runs fn on an OS thread moved into the network namespace with
// this inode, found as Dump finds namespaces (/proc/*/ns/net, /run/netns):
// what fn opens there (a netlink socket, /proc/thread-self/net/...) belongs
// to that namespace. A namespace that is gone returns an error wrapping
// ErrNetnsGone.
func RunInNetns(inode uint32, fn func() error) error {
	all, err := listNamespaces()
	if err != nil {
		return err
	}
	for _, ns := range all {
		if ns.inode == inode {
			return runInNetns(ns, fn)
		}
	}
	return fmt.Errorf("network namespace %d: %w: no process or %s entry leads to it", inode, ErrNetnsGone, netnsRunDir)
}

// ErrNetnsGone marks a namespace that vanished (or was never found).
var ErrNetnsGone = errNamespaceGone

func runInNetns(ns namespace, fn func() error) error {
	err := fmt.Errorf("network namespace %d %w: no path leads to it", ns.inode, errNamespaceGone)
	for _, path := range ns.paths {
		var target int
		if target, err = openNetns(ns.inode, path); errors.Is(err, errNamespaceGone) {
			continue // another path may still lead to it
		} else if err != nil {
			return err
		}
		err = runIn(target, fn)
		unix.Close(target)
		if err != nil {
			return fmt.Errorf("network namespace %d (%s): %w", ns.inode, path, err)
		}
		return nil
	}
	return err
}

// openNetns opens the namespace inode by path; errNamespaceGone when the
// path leads nowhere now or to another namespace.
func openNetns(inode uint32, path string) (int, error) {
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	switch {
	case err == unix.ENOENT || err == unix.ESRCH:
		return -1, fmt.Errorf("network namespace %d (%s) %w: %w", inode, path, errNamespaceGone, err)
	case err != nil:
		return -1, fmt.Errorf("opening network namespace %d (%s): %w", inode, path, err)
	}
	// The path may now name another namespace (a PID reused, a process
	// that left it), or no namespace at all (a /run/netns name unmounted
	// since it was listed): check what was actually opened.
	var st unix.Stat_t
	var fs unix.Statfs_t
	if err := unix.Fstatfs(target, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		unix.Close(target)
		return -1, fmt.Errorf("network namespace %d (%s) %w: the path is no namespace now", inode, path, errNamespaceGone)
	}
	if err := unix.Fstat(target, &st); err != nil || uint32(st.Ino) != inode {
		unix.Close(target)
		return -1, fmt.Errorf("network namespace %d (%s) %w: the path now names another", inode, path, errNamespaceGone)
	}
	return target, nil
}

// runIn runs fn on an OS thread moved into the namespace target.
func runIn(target int, fn func() error) error {
	errc := make(chan error, 1)
	// A fresh goroutine owns the locked thread: if the thread cannot be put
	// back into its namespace, the goroutine exits still locked and the
	// runtime throws the thread away instead of reusing it elsewhere.
	go func() {
		runtime.LockOSThread()
		restored, err := runOnThread(target, fn)
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// runOnThread must run on a locked OS thread. restored reports whether the
// thread is back in its original namespace.
func runOnThread(target int, fn func() error) (restored bool, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, fmt.Errorf("opening this thread's network namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("entering it (needs CAP_SYS_ADMIN): %w", err)
	}
	err = fn()
	if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
		return false, fmt.Errorf("returning to our own network namespace: %w", rerr)
	}
	return true, err
}

// EachNetns runs fn in every network namespace that Dump with AllNetns
// lists, one at a time, each on an OS thread moved into it: what fn opens
// there (a BPF iterator, a netlink socket) belongs to that namespace. As
// in Dump, a namespace that vanishes is skipped with a warning, and so
// are those we may not enter (not root); another failure, fn's included,
// stops the walk.
func EachNetns(fn func(inode uint32) error) (warnings []string, err error) {
	namespaces, err := listNamespacesNoting(&warnings)
	if err != nil {
		return warnings, err
	}
	denied := 0
	for _, ns := range namespaces {
		err := runInNetns(ns, func() error { return fn(ns.inode) })
		switch {
		case err == nil:
		case errors.Is(err, errNamespaceGone):
			noteGone(ns.inode, err, &warnings)
		case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
			denied++
		default:
			return warnings, err
		}
	}
	if denied > 0 {
		warnings = append(warnings, deniedWarning(denied))
	}
	return warnings, nil
}

// noteGone says once that namespace inode vanished (err says how) and was
// skipped.
func noteGone(inode uint32, err error, pending *[]string) {
	note(fmt.Sprintf("gone %d", inode), err.Error()+"; skipped", pending)
}

// deniedWarning says that n namespaces were left out for want of the
// right to enter them.
func deniedWarning(n int) string {
	return fmt.Sprintf("%d other network namespaces skipped: entering them needs CAP_SYS_ADMIN (run as root)", n)
}
