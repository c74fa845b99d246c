package render

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/testutil"
)

// trace and record append the container object by hand; snapshot, top and
// backlog encode ContainerJSON: the bytes must be the same, forged names
// included.
func TestContainerJSONOneShape(t *testing.T) {
	id := "4f1d0c6f0c1b8a55d4b7d1e0a7ad3f5a6f0d9e8c7b6a5f4e3d2c1b0a99887766"
	for _, c := range []container.Container{
		{ID: id, Runtime: container.Docker, Cgroup: "/system.slice/docker-" + id + ".scope"},
		{ID: id, Runtime: container.Containerd, Name: "web", Pod: container.Pod{Namespace: "shop", Name: "web-1", UID: "0b5a1c2e-1111-4222-8333-944455556666"}, Cgroup: "/kubepods/x"},
		{ID: id, Pod: container.Pod{UID: "0b5a1c2e-1111-4222-8333-944455556666"}, Cgroup: "/kubepods/burstable/pod0b5a1c2e-1111-4222-8333-944455556666/" + id},
		{ID: id, Runtime: container.Podman, Name: "evil\"\n{\"x\":1}\u2028\x00", Cgroup: "/machine.slice/libpod-" + id + ".scope"},
	} {
		want, err := json.Marshal(struct {
			Container *ContainerJSON `json:"container"`
		}{ContainerToJSON(c, true)})
		if err != nil {
			t.Fatal(err)
		}
		got := append([]byte{'{'}, appendContainerJSON(nil, c, true)[1:]...)
		got = append(got, '}')
		// the same values; escapes may differ (\u000a for \n)
		var gotV, wantV map[string]any
		if err := json.Unmarshal(got, &gotV); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		json.Unmarshal(want, &wantV)
		if !reflect.DeepEqual(gotV, wantV) {
			t.Errorf("appended %s\nencoded  %s", got, want)
		}
	}
	if b := appendContainerJSON([]byte("x"), container.Container{}, false); string(b) != "x" {
		t.Errorf("the host's container appended %q", b)
	}
}

// Cells: a name when the runtime gave one, else the short id, as docker ps;
// the pod as namespace/name, else its uid; "-" for the host.
func TestContainerCells(t *testing.T) {
	id := "4f1d0c6f0c1b8a55d4b7d1e0a7ad3f5a6f0d9e8c7b6a5f4e3d2c1b0a99887766"
	pod := container.Pod{UID: "0b5a1c2e-1111-4222-8333-944455556666"}
	for _, tc := range []struct {
		c                container.Container
		ok               bool
		wantCtr, wantPod string
	}{
		{container.Container{}, false, "-", "-"},
		{container.Container{ID: id}, true, "4f1d0c6f0c1b", "-"},
		{container.Container{ID: id, Name: "web", Pod: container.Pod{Namespace: "shop", Name: "web-1", UID: pod.UID}}, true, "web", "shop/web-1"},
		{container.Container{ID: id, Pod: pod}, true, "4f1d0c6f0c1b", pod.UID},
		{container.Container{Pod: pod}, true, "-", pod.UID}, // a pod's own cgroup
	} {
		if got := string(appendContainerCell(nil, tc.c, tc.ok)); got != tc.wantCtr {
			t.Errorf("container cell of %+v = %q, want %q", tc.c, got, tc.wantCtr)
		}
		if got := string(appendPodCell(nil, tc.c, tc.ok)); got != tc.wantPod {
			t.Errorf("pod cell of %+v = %q, want %q", tc.c, got, tc.wantPod)
		}
	}
}

// Names keeps the last event's container object, but one not final only
// for a while: a container the runtime names later shows its names soon
// after, and events of the host and of a container, interleaved, each get
// their own.
func TestContainerJSONAfterNames(t *testing.T) {
	res := testutil.Resolver(t)
	_, cgroup := testutil.Cgroup(t, fmt.Sprintf("/socklife-render-names-%d/kubepods/burstable/pod0b5a1c2e-1111-4222-8333-944455556666/%s", os.Getpid(), testContainerID))
	var answered atomic.Bool
	a := container.NewAttributor(res, func(container.Runtime, string) (string, container.Pod, bool) {
		if !answered.Load() {
			return "", container.Pod{}, false
		}
		return "web", container.Pod{Namespace: "shop", Name: "web-7d9f"}, true
	}, func() uint64 {
		if answered.Load() {
			return 1
		}
		return 0
	})
	names := &Names{Containers: a}
	ev := sampleEvents()[0]
	line := func(sockCgroup uint64) string {
		ev.SockCgroupID = sockCgroup
		return string(AppendTraceJSON(nil, &ev, names))
	}
	for i := range 3 {
		if l := line(cgroup); !strings.Contains(l, `"name":null,"pod":{"namespace":null`) {
			t.Fatalf("event %d before the runtime answered: %s", i, l)
		}
	}
	answered.Store(true)
	// names may show up recheckNames events late, not later
	for range recheckNames {
		line(cgroup)
	}
	for i, sock := range []uint64{cgroup, cgroup, 0, cgroup, 0, 0, cgroup} {
		l := line(sock)
		switch named := strings.Contains(l, `"name":"web","pod":{"namespace":"shop","name":"web-7d9f"`); {
		case sock == 0 && strings.Contains(l, `"container"`):
			t.Errorf("event %d, the host's: %s", i, l)
		case sock != 0 && !named:
			t.Errorf("event %d, after the runtime answered: %s", i, l)
		}
	}
}
