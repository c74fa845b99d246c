package container

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// newTestResolver reads this host's hierarchy (root needed: open_by_handle_at).
func newTestResolver(t *testing.T) *Resolver {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (open_by_handle_at)")
	}
	h, err := FindHierarchy()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// mkCgroup makes a cgroup below the root and returns its id; removed at the end.
func mkCgroup(t *testing.T, r *Resolver, rel string) uint64 {
	t.Helper()
	dir := filepath.Join(r.Hierarchy().Mount, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for d := dir; d != r.Hierarchy().Mount; d = filepath.Dir(d) {
			unix.Rmdir(d)
		}
	})
	id, err := r.ID(rel)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A cgroup id names its path, found by file handle; the root is "/"; an id
// whose cgroup was removed names nothing, and stays so (ids are not reused).
func TestResolverPath(t *testing.T) {
	r := newTestResolver(t)
	rel := fmt.Sprintf("/socklife-resolve-%d/system.slice/docker-%064x.scope", os.Getpid(), 7)
	id := mkCgroup(t, r, rel)
	if p, ok := r.Path(id); !ok || p != rel {
		t.Errorf("Path(%d) = %q, %v; want %q", id, p, ok, rel)
	}
	if p, ok := r.Path(1); !ok || p != "/" {
		t.Errorf("Path(root) = %q, %v; want /", p, ok)
	}
	gone := mkCgroup(t, r, fmt.Sprintf("/socklife-resolve-gone-%d", os.Getpid()))
	if err := unix.Rmdir(filepath.Join(r.Hierarchy().Mount, fmt.Sprintf("/socklife-resolve-gone-%d", os.Getpid()))); err != nil {
		t.Fatal(err)
	}
	if p, ok := r.Path(gone); ok {
		t.Errorf("Path of a removed cgroup = %q, want none", p)
	}
	if _, ok := r.Path(0); ok {
		t.Error("Path(0) found something")
	}
}

// The attributor names a container cgroup, asks the runtime once it is
// known, keeps the path's pod uid when the runtime gives none, and calls
// the host's cgroups the host's.
func TestAttributor(t *testing.T) {
	r := newTestResolver(t)
	id := fmt.Sprintf("%064x", 0xc0ffee)
	uid := "0b5a1c2e-1111-4222-8333-944455556666"
	ctr := mkCgroup(t, r, fmt.Sprintf("/socklife-attr-%d/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b5a1c2e_1111_4222_8333_944455556666.slice/cri-containerd-%s.scope", os.Getpid(), id))
	host := mkCgroup(t, r, fmt.Sprintf("/socklife-attr-%d/system.slice/ssh.service", os.Getpid()))

	asked := 0
	answer := false
	var answers uint64 // the runtime's answers so far
	a := NewAttributor(r, func(rt Runtime, cid string) (string, Pod, bool) {
		asked++
		if rt != Containerd || cid != id {
			t.Errorf("names asked for %s %s", rt, cid)
		}
		return "web", Pod{Namespace: "shop", Name: "web-7d9f"}, answer
	}, func() uint64 { return answers })
	c, ok := a.Of(ctr)
	if !ok || c.ID != id || c.Runtime != Containerd || c.Pod.UID != uid || c.Name != "" {
		t.Fatalf("Of(container) = %+v, %v", c, ok)
	}
	// unnamed, it is asked again one lookup in askEvery, not every time
	// (a runtime that is absent answers nothing, ever)
	for range askEvery - 1 {
		a.Of(ctr)
	}
	if asked != 1 {
		t.Errorf("the runtime asked %d times in %d lookups, want once", asked, askEvery)
	}
	a.Of(ctr)
	if asked != 2 {
		t.Errorf("the runtime asked %d times in %d lookups, want twice", asked, askEvery+1)
	}
	// the runtime answers: the next lookup asks, and the names join
	answer = true
	answers++
	c, _ = a.Of(ctr)
	if c.Name != "web" || c.Pod != (Pod{Namespace: "shop", Name: "web-7d9f", UID: uid}) {
		t.Errorf("after the runtime answered: %+v", c)
	}
	before := asked
	a.Of(ctr)
	if asked != before {
		t.Error("the runtime was asked again after it answered")
	}
	if c, ok := a.Of(host); ok {
		t.Errorf("a host cgroup attributed to %+v", c)
	}
	if c, ok := a.OfSocket(host, ctr); !ok || c.ID != id {
		t.Errorf("OfSocket(host socket, container owner) = %+v, %v; want the owner's container", c, ok)
	}
	var nilA *Attributor
	if _, ok := nilA.OfSocket(ctr, ctr); ok {
		t.Error("a nil Attributor attributed")
	}
}
