package runtimes

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/socklife/socklife/internal/testutil"
)

// lookupSettled looks id up, waits for the fetch that starts, and looks
// it up again, as a one-shot command does: the names must be there.
func lookupSettled(tb testing.TB, n *Namer, runtime, id string) Names {
	tb.Helper()
	n.Lookup(runtime, id)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Scaled(30*time.Second))
	defer cancel()
	if err := n.Settle(ctx); err != nil {
		tb.Fatalf("settling the fetch of %s: %v", id, err)
	}
	names, ok := n.Lookup(runtime, id)
	if !ok {
		_, err := down(n, runtime)
		tb.Fatalf("no names for %s after its fetch (the runtime's last error: %v)", id, err)
	}
	return names
}

// waitSettled waits until the fetch Lookup queued for id has ended.
func waitSettled(tb testing.TB, n *Namer, id string) {
	tb.Helper()
	testutil.WaitFor(tb, 10*time.Second, "the fetch of "+id+" to end", func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		e := n.entries[id]
		return e != nil && !e.pending
	})
}

// down reports whether the Namer is leaving this runtime alone, and why.
func down(n *Namer, runtime string) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	b := n.backendFor(runtime)
	return n.now().Before(b.downUntil), b.lastErr
}

func newNamer(tb testing.TB, opts Options) *Namer {
	tb.Helper()
	n, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

// checkUnknownID looks up an id the runtime does not know: it gets no
// names, and the runtime, which answered, is not taken for down.
func checkUnknownID(tb testing.TB, n *Namer, runtime string) {
	tb.Helper()
	n.Lookup(runtime, unknownID)
	waitSettled(tb, n, unknownID)
	if names, ok := n.Lookup(runtime, unknownID); ok {
		tb.Errorf("unknown id named %+v", names)
	}
	if isDown, err := down(n, runtime); isDown {
		tb.Errorf("%s marked down after saying it has no such container: %v", runtime, err)
	}
}

// patience is the call timeout of the tests that talk to a real runtime:
// on a busy machine one answers in seconds, and these tests check the
// answers, not the timeout (TestSilentRuntimeCostsOneTimeoutThenRests does).
var patience = testutil.Scaled(30 * time.Second)

const unknownID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestDockerAPINamesPodmanContainers(t *testing.T) {
	p := startPodman(t)
	plain := p.Run(t, "create", "--name", "billing-worker", pauseImage)
	podded := p.Run(t, "create", "--name", "k8s_web_web-0_shop_6f1c_0",
		"--label", "io.kubernetes.container.name=web",
		"--label", "io.kubernetes.pod.name=web-0",
		"--label", "io.kubernetes.pod.namespace=shop",
		"--label", "io.kubernetes.pod.uid=6f1c2a3e-1b5d-4c8e-9a0f-2d4e6b8a0c1e", pauseImage)
	sandbox := p.Run(t, "create", "--name", "k8s_POD_web-0_shop_6f1c_0",
		"--label", "io.kubernetes.container.name=POD",
		"--label", "io.kubernetes.docker.type=podsandbox",
		"--label", "io.kubernetes.pod.name=web-0",
		"--label", "io.kubernetes.pod.namespace=shop",
		"--label", "io.kubernetes.pod.uid=6f1c2a3e-1b5d-4c8e-9a0f-2d4e6b8a0c1e", pauseImage)

	n := newNamer(t, Options{Endpoint: "unix://" + p.Sock, Timeout: patience})
	pod := Names{PodName: "web-0", PodNamespace: "shop", PodUID: "6f1c2a3e-1b5d-4c8e-9a0f-2d4e6b8a0c1e"}
	for _, tc := range []struct {
		id   string
		want Names
	}{
		{plain, Names{Container: "billing-worker"}},
		{podded, Names{Container: "web", PodName: pod.PodName, PodNamespace: pod.PodNamespace, PodUID: pod.PodUID}},
		{sandbox, pod},
	} {
		if got := lookupSettled(t, n, Podman, tc.id); got != tc.want {
			t.Errorf("names of %s: got %+v, want %+v", tc.id, got, tc.want)
		}
	}

	checkUnknownID(t, n, Podman)

	st := n.Probe(context.Background())
	if len(st) != 1 || st[0].Err != nil || st[0].Protocol != "docker" || st[0].Name != "Podman Engine" ||
		st[0].Version != p.Run(t, "version", "--format", "{{.Server.Version}}") {
		t.Errorf("Probe: %+v", st)
	}
}

func TestCRINamesContainerd(t *testing.T) {
	c := startContainerd(t)
	n := newNamer(t, Options{Timeout: patience})
	// the default endpoints, with containerd's moved to the test's socket
	n.backends[Containerd] = newBackend(c.sock, protoCRI)

	st := n.Probe(context.Background())
	var found bool
	for _, s := range st {
		if s.Runtime == Containerd {
			found = true
			if s.Err != nil || s.Protocol != "cri" || s.Name != "containerd" || s.Version == "" ||
				!strings.Contains(c.version(t), " "+s.Version+" ") {
				t.Errorf("Probe of containerd: %+v", s)
			}
		}
	}
	if !found {
		t.Fatalf("Probe did not ask containerd: %+v", st)
	}
	// --runtime-endpoint: the protocol is found out by asking
	over := newNamer(t, Options{Endpoint: "unix://" + c.sock, Timeout: patience})
	if st := over.Probe(context.Background()); len(st) != 1 || st[0].Err != nil || st[0].Protocol != "cri" || st[0].Runtime != "" {
		t.Errorf("Probe of --runtime-endpoint containerd: %+v", st)
	}

	cl := c.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.Scaled(30*time.Second))
	defer cancel()
	if _, err := cl.rt.ListContainers(ctx, &cri.ListContainersRequest{}); err != nil {
		t.Errorf("ListContainers: %v", err)
	}
	if _, err := cl.rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{}); err != nil {
		t.Errorf("ListPodSandbox: %v", err)
	}
	if _, err := cl.names(ctx, unknownID); !errors.Is(err, errNotFound) {
		t.Errorf("names of an unknown id: %v, want errNotFound", err)
	}
	checkUnknownID(t, n, Containerd)

	c.importPause(t)
	pod := &cri.PodSandboxConfig{
		Metadata: &cri.PodSandboxMetadata{Name: "web-0", Namespace: "shop", Uid: "6f1c2a3e-1b5d-4c8e-9a0f-2d4e6b8a0c1e"},
		Labels: map[string]string{
			labelPodName: "web-0", labelPodNamespace: "shop", labelPodUID: "6f1c2a3e-1b5d-4c8e-9a0f-2d4e6b8a0c1e",
		},
		LogDirectory: t.TempDir(),
		Linux: &cri.LinuxPodSandboxConfig{CgroupParent: "/" + c.cgroupParent, SecurityContext: &cri.LinuxSandboxSecurityContext{
			NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_NODE},
		}},
	}
	run, err := cl.rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: pod})
	if err != nil {
		// This machine's hybrid cgroups (or its rlimits) may refuse a
		// sandbox; the calls above are what the Namer needs.
		t.Logf("RunPodSandbox refused, so no pod is named here: %v\ncontainerd logged:\n%s", err, c.errors())
		return
	}
	want := Names{PodName: "web-0", PodNamespace: "shop", PodUID: "6f1c2a3e-1b5d-4c8e-9a0f-2d4e6b8a0c1e"}
	if got := lookupSettled(t, n, Containerd, run.PodSandboxId); got != want {
		t.Errorf("names of sandbox %s: got %+v, want %+v", run.PodSandboxId, got, want)
	}
	created, err := cl.rt.CreateContainer(ctx, &cri.CreateContainerRequest{
		PodSandboxId:  run.PodSandboxId,
		SandboxConfig: pod,
		Config: &cri.ContainerConfig{
			Metadata: &cri.ContainerMetadata{Name: "web"},
			Image:    &cri.ImageSpec{Image: pauseImage},
			Labels:   map[string]string{labelContainerName: "web", labelPodName: "web-0", labelPodNamespace: "shop", labelPodUID: want.PodUID},
			LogPath:  "web.log",
		},
	})
	if err != nil {
		t.Fatalf("CreateContainer in a running sandbox: %v", err)
	}
	want.Container = "web"
	if got := lookupSettled(t, n, Containerd, created.ContainerId); got != want {
		t.Errorf("names of container %s: got %+v, want %+v", created.ContainerId, got, want)
	}
}
