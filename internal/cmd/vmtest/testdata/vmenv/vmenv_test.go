// Package vmenv checks the promises the vmtest initramfs makes to the
// test binaries it runs: root, mounts, modules, ss, testdata next to the
// binary, SOCKLIFE_BIN, a large RLIMIT_NOFILE and a working loopback.
// It is not under ./... (testdata is skipped by the go tool): vmtest
// builds it by path. On a host that is not a vmtest VM it skips.
package vmenv

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func requireVM(t *testing.T) {
	t.Helper()
	if os.Getenv("SOCKLIFE_BIN") != "/bin/socklife" {
		t.Skip("not inside a vmtest VM (SOCKLIFE_BIN is not /bin/socklife)")
	}
}

func TestMounts(t *testing.T) {
	requireVM(t)
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" /sys/kernel/tracing tracefs ", " /sys/fs/bpf bpf ", " /sys/fs/cgroup cgroup2 ", " /tmp tmpfs ", " /dev/pts devpts "} {
		if !strings.Contains(string(mounts), want) {
			t.Errorf("no %q in /proc/self/mounts:\n%s", want, mounts)
		}
	}
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Errorf("pseudo-terminals (the top test's): %v", err)
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Errorf("kernel BTF: %v", err)
	}
}

func TestEnvironment(t *testing.T) {
	requireVM(t)
	if os.Geteuid() != 0 {
		t.Errorf("euid %d, want 0", os.Geteuid())
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 100000 {
		t.Errorf("RLIMIT_NOFILE %d (err %v), want at least 100000", lim.Cur, err)
	}
	if b, err := os.ReadFile("testdata/fixture.txt"); err != nil || string(b) != "vmenv fixture\n" {
		t.Errorf("testdata/fixture.txt relative to the binary: %q, %v", b, err)
	}
	out, err := exec.Command(os.Getenv("SOCKLIFE_BIN"), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "socklife ") {
		t.Errorf("$SOCKLIFE_BIN version: %q, %v", out, err)
	}
}

// TestSSOverLoopback needs lo up, the diag modules loaded and ss's libraries.
func TestSSOverLoopback(t *testing.T) {
	requireVM(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, args := range [][]string{{"-tanH"}, {"-uanH"}, {"-xanH"}} {
		out, err := exec.Command("ss", args...).CombinedOutput()
		if err != nil {
			t.Errorf("ss %s: %v: %s", args[0], err, out)
		}
		if args[0] == "-tanH" && !strings.Contains(string(out), ln.Addr().String()) {
			t.Errorf("ss -tan does not show the listener %s:\n%s", ln.Addr(), out)
		}
	}
	if mods, err := os.ReadFile("/proc/modules"); err != nil || !strings.Contains(string(mods), "tcp_diag") {
		t.Errorf("tcp_diag not in /proc/modules (%v)", err)
	}
}
