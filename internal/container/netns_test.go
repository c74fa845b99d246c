package container_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/testutil"
)

func netnsInode(t *testing.T, path string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

// A namespace is named by what lives in it: a pod's, by its pod (all its
// processes are the pod's); one `ip netns add` made, by that name; the
// host's, where containers' processes mix with the host's, by nothing.
func TestNetnsNames(t *testing.T) {
	r := testutil.Resolver(t)
	uid := "0b5a1c2e-1111-4222-8333-944455556677"
	pod, _ := testutil.Cgroup(t, fmt.Sprintf("/socklife-netns-%d/kubepods.slice/kubepods-pod0b5a1c2e_1111_4222_8333_944455556677.slice/cri-containerd-%064x.scope", os.Getpid(), 9))
	w := testutil.StartWorkload(t, pod, "netns-pod", true)
	host, _ := testutil.Cgroup(t, fmt.Sprintf("/socklife-netns-%d/system.slice/docker-%064x.scope", os.Getpid(), 10))
	testutil.StartWorkload(t, host, "netns-host", false) // a container in the host's namespace
	named := testutil.NamedNetns(t)

	n := container.NewNetnsNames(container.NewAttributor(r, nil, nil))
	for _, tc := range []struct {
		ns   string
		want string
	}{
		{fmt.Sprintf("/proc/%d/ns/net", w.PID), "pod " + uid},
		{named, filepath.Base(named)},
		{"/proc/self/ns/net", ""},
	} {
		if got, _ := n.Lookup(netnsInode(t, tc.ns)); got != tc.want {
			t.Errorf("Name(%s) = %q, want %q", tc.ns, got, tc.want)
		}
	}
}
