package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireServersEnv, set by .ci/run (which installs the servers), turns a
// missing server binary from a skip into a failure.
const requireServersEnv = "SOCKLIFE_TEST_REQUIRE_SERVERS"

// ServerBinary finds a real server's binary (nginx, redis-server, nft). Where
// it is not installed the test skips with a reason (the kernel-matrix VMs
// have none), unless SOCKLIFE_TEST_REQUIRE_SERVERS=1, where it fails.
func ServerBinary(tb testing.TB, name string) string {
	tb.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if path := filepath.Join(dir, name); isExecutable(path) {
			return path
		}
	}
	if os.Getenv(requireServersEnv) == "1" {
		tb.Fatalf("%s is not installed, and %s=1 says it must be (.ci/run installs it)", name, requireServersEnv)
	}
	tb.Skipf("%s is not installed (apt-get install nginx-light redis-server nftables prometheus; .ci/run does)", name)
	return ""
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// FreePort returns a loopback TCP port nothing listens on now, for a server
// that must be told its port.
func FreePort(tb testing.TB) uint16 {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// Nginx is a running nginx: a master that listens and workers that accept,
// as a pre-fork server runs.
type Nginx struct {
	Port    uint16
	Master  int
	Workers []int
}

// StartNginx runs nginx (master and workers, its own config in a temp dir)
// listening on 127.0.0.1 with this listen() backlog, answering every
// request with "ok". It returns once every worker runs and the port
// answers; the test's end stops it.
func StartNginx(tb testing.TB, workers, backlog int) *Nginx {
	tb.Helper()
	RequireRoot(tb)
	bin := ServerBinary(tb, "nginx")
	dir := tb.TempDir()
	port := FreePort(tb)
	conf := fmt.Sprintf(`worker_processes %d;
daemon off;
master_process on;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log;
events { worker_connections 512; }
http {
	access_log off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	server {
		listen 127.0.0.1:%[3]d backlog=%[4]d;
		location / { return 200 "ok\n"; }
	}
}
`, workers, dir, port, backlog)
	path := filepath.Join(dir, "nginx.conf")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err == nil {
		_, err = f.WriteString(conf)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path, "-p", dir)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	n := &Nginx{Port: port, Master: cmd.Process.Pid}
	exited := StopAtEnd(tb, cmd, func() {
		// workers a test stopped must run to exit
		for _, w := range n.Workers {
			syscall.Kill(w, syscall.SIGCONT)
		}
	})
	WaitFor(tb, 10*time.Second, "nginx's workers and port", func() bool {
		select {
		case <-exited:
			tb.Fatalf("nginx exited: %s", stderr.String())
		default:
		}
		n.Workers = childrenOf(n.Master)
		return len(n.Workers) == workers && answers(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port))
	})
	return n
}

// Redis is a running redis-server.
type Redis struct {
	Port uint16
	PID  int
}

// StartRedis runs redis-server on a free port bound to these addresses
// (Debian's default is 127.0.0.1 and ::1: two listeners on one port),
// without persistence. It returns once every address answers.
func StartRedis(tb testing.TB, binds ...string) *Redis {
	tb.Helper()
	RequireRoot(tb)
	bin := ServerBinary(tb, "redis-server")
	dir := tb.TempDir()
	port := FreePort(tb)
	cmd := exec.Command(bin, "--port", strconv.Itoa(int(port)), "--bind", strings.Join(binds, " "),
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no", "--dir", dir, "--logfile", "")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := StopAtEnd(tb, cmd, nil)
	WaitFor(tb, 10*time.Second, "redis on "+strings.Join(binds, " "), func() bool {
		select {
		case <-exited:
			tb.Fatalf("redis-server exited: %s", out.String())
		default:
		}
		for _, b := range binds {
			if !answers(netip.AddrPortFrom(netip.MustParseAddr(b), port)) {
				return false
			}
		}
		return true
	})
	return &Redis{Port: port, PID: cmd.Process.Pid}
}

// StopAtEnd waits for a started server in the background and stops it
// when the test ends: before (if set), then SIGTERM (a clean shutdown for
// nginx, redis, containerd and podman), then SIGKILL if it lingers. The channel closes when it
// has exited.
func StopAtEnd(tb testing.TB, cmd *exec.Cmd, before func()) <-chan struct{} {
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		if before != nil {
			before()
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	return exited
}

// answers reports whether something accepts connections on a.
func answers(a netip.AddrPort) bool {
	c, err := net.DialTimeout("tcp", a.String(), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so after the last ')'
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}
