package container

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	const (
		v1cpu   = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
		tmpfs   = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
		unified = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
		pure    = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
		// a runtime's bind mount of one cgroup: not the hierarchy's root
		bind    = "50 23 0:26 /kubepods.slice /host/cg rw - cgroup2 cgroup2 rw\n"
		spaced  = "29 23 0:26 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n"
		optless = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
	)
	for _, tc := range []struct {
		name, mountinfo string
		want            Hierarchy
		err             error
	}{
		{"pure v2 (systemd unified, Kubernetes nodes)", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n" + pure, Hierarchy{Unified, "/sys/fs/cgroup", 0, ""}, nil},
		{"hybrid (this machine)", tmpfs + v1cpu + unified, Hierarchy{Hybrid, "/sys/fs/cgroup/unified", 0, ""}, nil},
		{"legacy v1 alone", tmpfs + v1cpu, Hierarchy{Layout: Legacy}, ErrNoCgroup2},
		{"nothing", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", Hierarchy{}, ErrNoCgroup2},
		{"bind mount of a subtree first", bind + pure, Hierarchy{Unified, "/sys/fs/cgroup", 0, ""}, nil},
		{"escaped mount point", spaced, Hierarchy{Unified, "/mnt/cg two", 0, ""}, nil},
		{"no optional fields", optless, Hierarchy{Unified, "/sys/fs/cgroup", 0, ""}, nil},
		{"short line ignored", "garbage\n" + pure, Hierarchy{Unified, "/sys/fs/cgroup", 0, ""}, nil},
		// in a container's own cgroup namespace (a pod's), the host's
		// cgroupfs shows its root three levels above ours; the
		// container's own mount is a subtree of it
		{"private cgroup namespace", "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n" +
			"41 31 0:26 /../../.. /host/cgroup rw,relatime - cgroup2 cgroup2 rw\n", Hierarchy{Unified, "/host/cgroup", 3, "/sys/fs/cgroup"}, nil},
		{"private cgroup namespace, only the host's mounted", "41 31 0:26 /../../.. /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			Hierarchy{Unified, "/sys/fs/cgroup", 3, ""}, nil},
		{"a subtree below an ancestor is no root", "41 31 0:26 /../a /x rw - cgroup2 cgroup2 rw\n", Hierarchy{}, ErrNoCgroup2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMountinfo(strings.NewReader(tc.mountinfo))
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("got %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// Paths from /proc/PID/cgroup are relative to our cgroup namespace's root:
// made whole from its path when known, else only when they climb to the
// hierarchy's root.
func TestAbs(t *testing.T) {
	for _, tc := range []struct {
		above  int
		nsRoot string
		path   string
		want   string
		ok     bool
	}{
		{0, "/", "/system.slice/ssh.service", "/system.slice/ssh.service", true},
		{0, "/", "/", "/", true},
		{3, "/kubepods/burstable/podA", "/../podB/ctr", "/kubepods/burstable/podB/ctr", true},
		{3, "/kubepods/burstable/podA", "/", "/kubepods/burstable/podA", true},
		{3, "", "/../../../system.slice/x.service", "/system.slice/x.service", true},
		{3, "", "/../../..", "/", true},
		{3, "", "/../podB/ctr", "", false},   // shares an ancestor we cannot name
		{3, "", "/../../../../x", "", false}, // above the root: not a path of ours
		{2, "", "/ctr", "", false},           // below our root, whose name we lack
	} {
		r := &Resolver{h: Hierarchy{Above: tc.above}, nsRoot: tc.nsRoot}
		if got, ok := r.Abs(tc.path); got != tc.want || ok != tc.ok {
			t.Errorf("above %d, root %q: Abs(%q) = %q, %v; want %q, %v", tc.above, tc.nsRoot, tc.path, got, ok, tc.want, tc.ok)
		}
	}
}
