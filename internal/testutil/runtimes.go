package testutil

// runtimes.go: a real container runtime for the tests that name
// containers: Podman serving the Docker Engine API on a socket of the
// test's own, with storage of its own, so nothing of the host's is
// touched. Containers are created, not started: this machine's root lacks
// the capability runc needs to start one (see internal/runtimes' tests).

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PauseImage is the image the runtimes' tests use: FROM scratch with one
// static binary that waits for SIGTERM, built by the test (no registry is
// reachable).
const PauseImage = "localhost/socklife-pause:test"

// Podman runs podman against a test's own storage.
type Podman struct {
	Bin  string
	Args []string // global flags: the test's storage, no systemd
	Sock string   // where it serves the Docker Engine API
}

// Run runs podman with args and returns its output, trimmed.
func (p *Podman) Run(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command(p.Bin, append(append([]string{}, p.Args...), args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("podman %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// NewPodman is podman with storage of the test's own in a temp dir, which
// the test's end removes: nothing it builds or creates reaches the host's.
func NewPodman(tb testing.TB) *Podman {
	tb.Helper()
	RequireRoot(tb)
	// podman refuses a runroot path over 50 characters: t.TempDir's are longer
	dir, err := os.MkdirTemp("", "slpm")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return &Podman{
		Bin: ServerBinary(tb, "podman"),
		Args: []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
			"--tmpdir", filepath.Join(dir, "tmp"), "--storage-driver", "vfs",
			"--cgroup-manager", "cgroupfs", "--events-backend", "file"},
		Sock: filepath.Join(dir, "podman.sock"),
	}
}

// StartPodman serves the Docker Engine API (podman system service) on a
// socket in a temp dir, with PauseImage built into its storage; the
// test's end stops it.
func StartPodman(tb testing.TB) *Podman {
	tb.Helper()
	p := NewPodman(tb)
	p.Run(tb, "build", "-q", "-t", PauseImage, PauseContext(tb))
	cmd := exec.Command(p.Bin, append(append([]string{}, p.Args...), "system", "service", "--time=0", "unix://"+p.Sock)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting podman system service: %v", err)
	}
	exited := StopAtEnd(tb, cmd, nil)
	WaitFor(tb, 30*time.Second, "podman answering on "+p.Sock, func() bool {
		select {
		case <-exited:
			tb.Fatalf("podman system service exited: %s", out.String())
		default:
		}
		return pingDocker(p.Sock)
	})
	return p
}

// pingDocker says whether a Docker Engine API answers /_ping on sock.
func pingDocker(sock string) bool {
	cl := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	resp, err := cl.Get("http://docker/_ping")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && string(body) == "OK"
}

// PauseContext writes a build context for PauseImage: a static Go binary
// and its Containerfile.
func PauseContext(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	src := filepath.Join(dir, "pause.go")
	err := os.WriteFile(src, []byte(`package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
`), 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "pause"), src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("building the pause binary: %v: %s", err, out)
	}
	cf := "FROM scratch\nCOPY pause /pause\nENTRYPOINT [\"/pause\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(cf), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}
