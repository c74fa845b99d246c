package container

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// netnsRescan bounds how often NetnsNames walks /proc again for a
// namespace it has not seen: a burst of new namespaces costs one walk.
const netnsRescan = 2 * time.Second

// maxNetnsNames bounds NetnsNames' cache: namespaces come and go (pods);
// past this many the answers are forgotten and found again.
const maxNetnsNames = 1 << 14

// NetnsNames names network namespaces by what lives in them: the pod (or
// container) whose processes are in it, else the name `ip netns add` gave
// it in /run/netns. Safe for concurrent use.
type NetnsNames struct {
	a      *Attributor
	runDir string // /run/netns; a test may point elsewhere

	mu      sync.Mutex
	names   map[uint32]string
	scanned time.Time
}

// NewNetnsNames names namespaces through a (nil: /run/netns names only).
func NewNetnsNames(a *Attributor) *NetnsNames {
	return &NetnsNames{a: a, runDir: "/run/netns", names: map[uint32]string{}}
}

// Lookup is what lives in the namespace with this inode: "NAMESPACE/POD",
// "pod UID" before the runtime names it, a container's name or short id,
// or a /run/netns name; "" when nothing names it. final says whether the
// answer is final: a namespace seen once
// keeps its answer, "" included (the host's, named by nothing, must not
// cost a walk of /proc every few seconds); one not seen yet, while the
// last walk is too recent to walk again, is not final.
func (n *NetnsNames) Lookup(inode uint32) (name string, final bool) {
	if n == nil || inode == 0 {
		return "", true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if name, seen := n.names[inode]; seen {
		return name, true
	}
	if time.Since(n.scanned) < netnsRescan {
		return "", false
	}
	n.scan()
	name, seen := n.names[inode]
	if !seen {
		n.names[inode] = "" // nothing names it now
	}
	return name, true
}

// scan names every namespace on the host now.
func (n *NetnsNames) scan() {
	n.scanned = time.Now()
	if len(n.names) > maxNetnsNames {
		clear(n.names)
	}
	if entries, err := os.ReadDir(n.runDir); err == nil {
		for _, e := range entries {
			path := filepath.Join(n.runDir, e.Name())
			var fs unix.Statfs_t
			if unix.Statfs(path, &fs) != nil || fs.Type != unix.NSFS_MAGIC {
				continue // a stale file, not a namespace
			}
			if ino, ok := inodeOf(path); ok {
				n.names[ino] = e.Name()
			}
		}
	}
	if n.a == nil {
		return
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	// A namespace is named by its containers only when every process in
	// it is theirs: the host's namespace, where a hostNetwork pod's
	// processes live too, is not that pod's.
	const mixed = "\x00"
	labels := map[uint32]string{}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		ino, ok := inodeOf("/proc/" + p.Name() + "/ns/net")
		if !ok || labels[ino] == mixed {
			continue
		}
		label := mixed
		if c, ok := n.a.OfProcess(pid); ok {
			label = c.label()
		}
		if prev, seen := labels[ino]; seen && prev != label {
			label = mixed
		}
		labels[ino] = label
	}
	for ino, label := range labels {
		if label != mixed {
			n.names[ino] = label
		}
	}
}

func inodeOf(path string) (uint32, bool) {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0, false
	}
	return uint32(st.Ino), true
}

// label names a container's network namespace: its pod, else itself.
func (c Container) label() string {
	switch {
	case c.Pod.Name != "":
		return c.Pod.Namespace + "/" + c.Pod.Name
	case c.Pod.UID != "":
		return "pod " + c.Pod.UID
	case c.Name != "":
		return c.Name
	case len(c.ID) >= 12:
		return c.ID[:12]
	}
	return c.ID
}
