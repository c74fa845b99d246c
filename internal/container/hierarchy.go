package container

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Layout is how a host mounts its cgroups.
type Layout string

const (
	// Unified: cgroup v2 alone, mounted at /sys/fs/cgroup (what current
	// distributions and Kubernetes nodes run).
	Unified Layout = "unified"
	// Hybrid: v1 controllers under /sys/fs/cgroup/*, v2 beside them
	// (systemd's "hybrid" mode, at /sys/fs/cgroup/unified).
	Hybrid Layout = "hybrid"
	// Legacy: cgroup v1 alone. The v2 ids BPF reads then all name the v2
	// root, so nothing can be attributed.
	Legacy Layout = "legacy"
)

// Hierarchy is the cgroup v2 hierarchy: where it is mounted, and beside
// what.
type Hierarchy struct {
	Layout Layout
	// Mount is where the cgroup v2 root is mounted; "" with Legacy.
	Mount string
	// Above is how far the hierarchy's root is above the root of this
	// process's cgroup namespace: 0 in the host's; in a container's own
	// (a pod's, on cgroup v2), the depth of its cgroup, which
	// /proc/PID/cgroup paths climb with "/.." to reach the root.
	Above int
	// Own is where this namespace's own cgroup (its root) is mounted
	// when the hierarchy's is above it: how a path in /proc/PID/cgroup,
	// relative to it, is made whole. "" when not mounted.
	Own string
}

// ErrNoCgroup2 says no cgroup v2 hierarchy is mounted.
var ErrNoCgroup2 = errors.New("no cgroup v2 hierarchy mounted")

// FindHierarchy reads /proc/self/mountinfo for the cgroup v2 mount.
func FindHierarchy() (Hierarchy, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return Hierarchy{}, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// parseMountinfo finds the cgroup2 mount whose root is the hierarchy's
// root. Several may exist (a container runtime's bind mounts of one
// cgroup's directory show a root other than "/"); the first whole one
// wins, as the kernel lists mounts in the order they were made.
func parseMountinfo(r io.Reader) (Hierarchy, error) {
	var v2, own string
	above := -1 // of v2's root: the highest whole mount wins
	v1 := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		switch fields[sep+1] {
		case "cgroup2":
			// Roots are shown from this cgroup namespace's root: "/" for
			// it, "/../.." for the hierarchy's root two levels above (a
			// host's cgroupfs mounted into a container). A root that goes
			// down anywhere is a subtree: not the whole hierarchy.
			up, whole := climbs(fields[3])
			if whole && up > above {
				v2, above = unescapeMount(fields[4]), up
			}
			if whole && up == 0 && own == "" {
				own = unescapeMount(fields[4])
			}
		case "cgroup":
			v1 = true
		}
	}
	if err := sc.Err(); err != nil {
		return Hierarchy{}, fmt.Errorf("reading mountinfo: %w", err)
	}
	switch {
	case v2 == "":
		if v1 {
			return Hierarchy{Layout: Legacy}, ErrNoCgroup2
		}
		return Hierarchy{}, ErrNoCgroup2
	}
	h := Hierarchy{Layout: Unified, Mount: v2, Above: above}
	if v1 {
		h.Layout = Hybrid
	}
	if above > 0 {
		h.Own = own
	}
	return h, nil
}

// climbs reads a cgroup path made only of "/.." steps ("/" is none): how
// many, and whether that is all it is.
func climbs(path string) (int, bool) {
	if path == "/" {
		return 0, true
	}
	n := 0
	for rest := path; rest != ""; n++ {
		var ok bool
		if rest, ok = strings.CutPrefix(rest, "/.."); !ok {
			return 0, false
		}
	}
	return n, true
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}
