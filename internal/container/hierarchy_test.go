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
		{"pure v2 (systemd unified, Kubernetes nodes)", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n" + pure, Hierarchy{Unified, "/sys/fs/cgroup"}, nil},
		{"hybrid (this machine)", tmpfs + v1cpu + unified, Hierarchy{Hybrid, "/sys/fs/cgroup/unified"}, nil},
		{"legacy v1 alone", tmpfs + v1cpu, Hierarchy{Layout: Legacy}, ErrNoCgroup2},
		{"nothing", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n", Hierarchy{}, ErrNoCgroup2},
		{"bind mount of a subtree first", bind + pure, Hierarchy{Unified, "/sys/fs/cgroup"}, nil},
		{"escaped mount point", spaced, Hierarchy{Unified, "/mnt/cg two"}, nil},
		{"no optional fields", optless, Hierarchy{Unified, "/sys/fs/cgroup"}, nil},
		{"short line ignored", "garbage\n" + pure, Hierarchy{Unified, "/sys/fs/cgroup"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMountinfo(strings.NewReader(tc.mountinfo))
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("got %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}
