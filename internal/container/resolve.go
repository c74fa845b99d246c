package container

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	pathpkg "path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// fileidKernfs is the kernel's FILEID_KERNFS: a kernfs file handle is the
// node's 64-bit id, which for a cgroup directory is the cgroup id.
const fileidKernfs = 0xfe

// maxPaths bounds the resolver's cache. A host has a few thousand cgroups
// at most; ids are never reused, so a full cache is simply cleared.
const maxPaths = 1 << 16

// Resolver turns cgroup v2 ids into paths. The kernel gives every cgroup
// directory a 64-bit id that is also its inode number and its file handle,
// so a path is one open_by_handle_at away: no walk of the hierarchy.
type Resolver struct {
	h     Hierarchy
	mount *os.File

	// nsRoot is this cgroup namespace's root, from the hierarchy's root
	// (see findNsRoot); "" when unknown
	nsRoot string

	mu    sync.Mutex
	paths map[uint64]string // "" for an id that names no cgroup (gone)
}

// NewResolver opens the hierarchy's root. It needs CAP_DAC_READ_SEARCH
// (root) for open_by_handle_at.
func NewResolver(h Hierarchy) (*Resolver, error) {
	if h.Mount == "" {
		return nil, ErrNoCgroup2
	}
	f, err := os.OpenFile(h.Mount, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the cgroup v2 root: %w", err)
	}
	r := &Resolver{h: h, mount: f, paths: make(map[uint64]string)}
	r.nsRoot = r.findNsRoot()
	return r, nil
}

// findNsRoot is the path of this cgroup namespace's root from the
// hierarchy's: "/" in the host's namespace; in a container's own, the path
// of the cgroup its own mount (Own) shows as root, found by that cgroup's
// id; "" when there is no such mount to ask.
func (r *Resolver) findNsRoot() string {
	if r.h.Above == 0 {
		return "/"
	}
	if r.h.Own == "" {
		return ""
	}
	var st unix.Stat_t
	if unix.Stat(r.h.Own, &st) != nil {
		return ""
	}
	p, _ := r.Path(st.Ino)
	return p
}

// Abs makes a path /proc/PID/cgroup gives, relative to this cgroup
// namespace's root ("/../../kubepods/..." in a container's own), a path
// from the hierarchy's root; false when that cannot be known.
func (r *Resolver) Abs(path string) (string, bool) {
	if r.nsRoot != "" {
		return pathpkg.Join(r.nsRoot, path), true
	}
	// Without the namespace root's name, only a path that climbs to the
	// hierarchy's root (and no higher) can be followed: a host
	// process's, or one under no ancestor it shares with us.
	rest := path
	for range r.h.Above {
		var ok bool
		if rest, ok = strings.CutPrefix(rest, "/.."); !ok {
			return "", false
		}
	}
	if strings.HasPrefix(rest, "/..") {
		return "", false
	}
	return pathpkg.Join("/", rest), true
}

// Close releases the hierarchy's root.
func (r *Resolver) Close() error { return r.mount.Close() }

// Hierarchy is the hierarchy the resolver reads.
func (r *Resolver) Hierarchy() Hierarchy { return r.h }

// Path is the cgroup's path from the hierarchy's root ("/" for the root,
// "/system.slice/nginx.service"), and false for an id that names no
// cgroup now (it was removed, or the id is not a cgroup's).
func (r *Resolver) Path(id uint64) (string, bool) {
	if id == 0 {
		return "", false
	}
	r.mu.Lock()
	p, ok := r.paths[id]
	r.mu.Unlock()
	if ok {
		return p, p != ""
	}
	p, err := r.lookup(id)
	if err != nil {
		p = ""
	}
	r.mu.Lock()
	if len(r.paths) >= maxPaths {
		clear(r.paths)
	}
	r.paths[id] = p
	r.mu.Unlock()
	return p, p != ""
}

// ID is the cgroup id of a path from the hierarchy's root: its inode.
func (r *Resolver) ID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(int(r.mount.Fd()), "./"+strings.TrimLeft(path, "/"), &st, 0); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func (r *Resolver) lookup(id uint64) (string, error) {
	var handle [8]byte
	binary.NativeEndian.PutUint64(handle[:], id)
	fd, err := unix.OpenByHandleAt(int(r.mount.Fd()), unix.NewFileHandle(fileidKernfs, handle[:]), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", err
	}
	// The link is the directory as this process sees it: below the mount.
	rel, ok := strings.CutPrefix(target, r.h.Mount)
	if !ok || (rel != "" && rel[0] != '/') {
		return "", errors.New("cgroup outside the hierarchy's mount: " + target)
	}
	if rel == "" {
		rel = "/"
	}
	return rel, nil
}

// Containers counts the containers in the hierarchy now, up to limit (0:
// all): distinct container ids, so that a pod's own cgroup and a
// container's sub-cgroups (libpod-ID.scope/container) add none.
// Containers(1) > 0 says whether a table whose columns are fixed before
// its first row (trace's) should have CONTAINER and POD.
func (r *Resolver) Containers(limit int) int {
	ids := map[string]bool{}
	enough := errors.New("enough")
	filepath.WalkDir(r.h.Mount, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // a cgroup removed under the walk, or a file
		}
		if p, ok := ParsePath(strings.TrimPrefix(path, r.h.Mount)); ok && p.ID != "" {
			ids[p.ID] = true
			if len(ids) == limit {
				return enough
			}
		}
		return nil
	})
	return len(ids)
}

// Matching returns the ids of the cgroups whose path keep accepts, with
// what the path says: a container's cgroup, those below it, a pod's own.
func (r *Resolver) Matching(keep func(p Path) bool) []uint64 {
	var ids []uint64
	filepath.WalkDir(r.h.Mount, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if p, ok := ParsePath(strings.TrimPrefix(path, r.h.Mount)); ok && keep(p) {
			if info, err := d.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					ids = append(ids, st.Ino)
				}
			}
		}
		return nil
	})
	return ids
}
