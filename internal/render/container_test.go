package render

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/socklife/socklife/internal/container"
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
