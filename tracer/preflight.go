package tracer

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// BTFPath is where the kernel exposes its own type information, which CO-RE
// needs to fit one object to every kernel.
const BTFPath = "/sys/kernel/btf/vmlinux"

// Capabilities numbers not in every libc header.
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// Preflight checks what New needs before it tries anything, so that a
// missing right or a kernel without BTF reads as one clear line, not a
// verifier dump.
func Preflight() error {
	if err := checkCapabilities(); err != nil {
		return err
	}
	return checkBTF(BTFPath)
}

// checkBTF says, in one line, that CO-RE has nothing to relocate against.
func checkBTF(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("kernel BTF not found at %s (needs CONFIG_DEBUG_INFO_BTF): %w", path, err)
	}
	return nil
}

// checkCapabilities asks capget for the effective set: loading tracing
// programs needs CAP_BPF and CAP_PERFMON (5.8+), or CAP_SYS_ADMIN.
func checkCapabilities() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if has(capSysAdmin) {
		return nil
	}
	switch {
	case !has(capBPF) && !has(capPerfmon):
		return errors.New("missing capabilities CAP_BPF and CAP_PERFMON (run as root)")
	case !has(capBPF):
		return errors.New("missing capability CAP_BPF (run as root)")
	case !has(capPerfmon):
		return errors.New("missing capability CAP_PERFMON (run as root)")
	}
	return nil
}

const tracefsDir = "/sys/kernel/tracing"

// ensureTracefs mounts tracefs where tracepoints look for it if nothing is
// mounted there or under debugfs, and says whether it did. It must run
// before the first attach: cilium/ebpf looks the mount up once per process
// and caches a miss.
func ensureTracefs() (mounted bool, err error) {
	for _, dir := range []string{tracefsDir, "/sys/kernel/debug/tracing"} {
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil && st.Type == unix.TRACEFS_MAGIC {
			return false, nil
		}
	}
	if err := unix.Mount("tracefs", tracefsDir, "tracefs", 0, ""); err != nil {
		return false, fmt.Errorf("mounting tracefs at %s: %w", tracefsDir, err)
	}
	return true, nil
}

// Lockdown reads the kernel lockdown mode ("none", "integrity",
// "confidentiality"), or "" if securityfs does not say.
func Lockdown() string {
	b, err := os.ReadFile("/sys/kernel/security/lockdown")
	if err != nil {
		return ""
	}
	// "none [integrity] confidentiality": the bracketed one is in force.
	_, rest, ok := strings.Cut(string(b), "[")
	mode, _, ok2 := strings.Cut(rest, "]")
	if !ok || !ok2 {
		return ""
	}
	return mode
}
