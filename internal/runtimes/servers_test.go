package runtimes

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/socklife/socklife/internal/testutil"
)

// The real runtimes these tests talk to, each started by the test on
// sockets, roots and state of its own in a temp dir, so that nothing of
// the host's runtimes is touched or needed.

// pauseImage is the image both runtimes get (testutil.PauseImage).
const pauseImage = testutil.PauseImage

// startPodman serves the Docker Engine API (testutil.StartPodman).
func startPodman(tb testing.TB) *testutil.Podman { return testutil.StartPodman(tb) }

// containerd is a containerd with its CRI plugin, serving on a socket in a
// temp dir.
type containerd struct {
	bin  string
	sock string
	// cgroupParent is the cgroup for the test's pods (without one, runc
	// leaves /k8s.io behind)
	cgroupParent string
	ctr          string
	log          *bytes.Buffer
}

func startContainerd(tb testing.TB) *containerd {
	tb.Helper()
	testutil.RequireRoot(tb)
	bin := testutil.ServerBinary(tb, "containerd")
	dir := tb.TempDir()
	c := &containerd{
		bin: bin, sock: filepath.Join(dir, "containerd.sock"), ctr: testutil.ServerBinary(tb, "ctr"), log: &bytes.Buffer{},
		cgroupParent: fmt.Sprintf("socklife-names-test-%d", os.Getpid()),
	}
	// after containerd and its pods have stopped
	tb.Cleanup(func() { removeCgroups(tb, c.cgroupParent) })
	conf := fmt.Sprintf(`version = 2
root = "%[1]s/root"
state = "%[1]s/state"
[grpc]
  address = "%[2]s"
[ttrpc]
  address = "%[2]s.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%[3]s"
  # The sandbox asks for oom_score_adj -998, which needs CAP_SYS_RESOURCE;
  # runc says "failed to update /proc/self/oom_score_adj: Permission
  # denied" where root lacks it (as on the development machine). Clamped
  # to containerd's own value, the pod starts.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "%[1]s/cni/bin"
    conf_dir = "%[1]s/cni/conf"
`, dir, c.sock, pauseImage)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", path)
	cmd.Stdout, cmd.Stderr = c.log, c.log
	startServer(tb, cmd, "containerd", c.sock, protoCRI)
	// Before containerd stops: sandboxes a test ran hold shims, mounts
	// in the temp dir and cgroups, which outlive containerd.
	cl := c.client(tb)
	tb.Cleanup(func() {
		ctx := context.Background()
		pods, err := cl.rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
		if err != nil {
			tb.Errorf("listing sandboxes to remove: %v", err)
			return
		}
		for _, p := range pods.Items {
			if _, err := cl.rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
				tb.Errorf("stopping sandbox %s: %v", p.Id, err)
			}
			if _, err := cl.rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
				tb.Errorf("removing sandbox %s: %v", p.Id, err)
			}
		}
	})
	return c
}

// version is what containerd --version says, e.g. "containerd
// github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3".
func (c *containerd) version(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command(c.bin, "--version").Output()
	if err != nil {
		tb.Fatalf("containerd --version: %v", err)
	}
	return strings.TrimSpace(string(out)) + " "
}

// removeCgroups removes the cgroup called name and those under it in every
// hierarchy (v1 controllers and v2): runc leaves a pod's parent behind.
func removeCgroups(tb testing.TB, name string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", name))
	more, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name))
	for _, top := range append(dirs, more...) {
		var tree []string
		filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				tree = append(tree, path)
			}
			return nil
		})
		for i := len(tree) - 1; i >= 0; i-- { // children first
			if err := os.Remove(tree[i]); err != nil {
				tb.Errorf("removing the pods' cgroup: %v", err)
			}
		}
	}
}

// client is a CRI client for this containerd, closed at the test's end.
func (c *containerd) client(tb testing.TB) *criClient {
	tb.Helper()
	cl, err := dialCRI(c.sock)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cl.close() })
	return cl
}

// importPause builds the pause image with podman and imports it into
// containerd's k8s.io namespace, where the CRI plugin looks for images.
func (c *containerd) importPause(tb testing.TB) {
	tb.Helper()
	p := startPodman(tb)
	archive := filepath.Join(tb.TempDir(), "pause.tar")
	p.Run(tb, "save", "-o", archive, pauseImage)
	out, err := exec.Command(c.ctr, "--address", c.sock, "-n", "k8s.io", "images", "import", archive).CombinedOutput()
	if err != nil {
		tb.Fatalf("ctr images import: %v: %s", err, out)
	}
}

// errors returns what containerd logged at level error, to say why it
// refused something.
func (c *containerd) errors() string {
	var lines []string
	for _, l := range strings.Split(c.log.String(), "\n") {
		if strings.Contains(l, "level=error") && !strings.Contains(l, "cni") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// startServer starts a runtime and waits until its socket answers in the
// protocol it speaks; the test's end stops it (SIGTERM, then SIGKILL).
func startServer(tb testing.TB, cmd *exec.Cmd, what, sock string, proto protocol) {
	tb.Helper()
	if cmd.Stdout == nil {
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", what, err)
	}
	exited := testutil.StopAtEnd(tb, cmd, nil)
	testutil.WaitFor(tb, 30*time.Second, what+" answering on "+sock, func() bool {
		select {
		case <-exited:
			tb.Fatalf("%s exited: %s", what, cmd.Stdout)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cl, _, _, _, err := connect(ctx, sock, proto)
		if err != nil {
			return false
		}
		cl.close()
		return true
	})
}
