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
// namespace it cannot name: a namespace with nothing in it stays unnamed
// without costing a walk per lookup.
const netnsRescan = 2 * time.Second

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

// Name is what lives in the namespace with this inode: "NAMESPACE/POD",
// "pod UID" before the runtime names it, a container's name or short id,
// or a /run/netns name; "" when nothing names it.
func (n *NetnsNames) Name(inode uint32) string {
	if n == nil || inode == 0 {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	name, ok := n.names[inode]
	if ok || time.Since(n.scanned) < netnsRescan {
		return name
	}
	n.scan()
	return n.names[inode]
}

// scan names every namespace on the host now.
func (n *NetnsNames) scan() {
	n.scanned = time.Now()
	clear(n.names)
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
