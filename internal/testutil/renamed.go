package testutil

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// renamedEnv carries the command name a "renamed" helper sets.
const renamedEnv = "SOCKLIFE_TESTUTIL_COMM"

// Renamed is a child process that renamed itself (prctl(PR_SET_NAME), what
// /proc/PID/comm shows) and holds a TCP listener and an abstract Unix
// stream listener.
type Renamed struct {
	PID int
	// Port is the TCP listener's, on 127.0.0.1.
	Port uint16
	// Abstract is the Unix listener's abstract name, its leading NUL
	// included: "\x00socklife\x00PID", a NUL inside as well.
	Abstract string
}

// StartRenamed starts a process named comm (the kernel keeps its first 15
// bytes) holding the two listeners; it exits when the test ends. The
// child is this test binary, re-executed.
func StartRenamed(tb testing.TB, comm string) *Renamed {
	tb.Helper()
	h, err := startHelper("renamed helper", "renamed", renamedEnv+"="+comm)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.stop)
	port, err := h.waitReady(time.After(Scaled(helperReadyWithin)))
	if err != nil {
		tb.Fatal(err)
	}
	pid := h.pid()
	return &Renamed{PID: pid, Port: uint16(port), Abstract: "\x00socklife\x00" + strconv.Itoa(pid)}
}

// holdRenamed runs in init, on the main thread (the runtime locks the main
// goroutine to it during initialization), whose comm is the process's.
func holdRenamed() error {
	name := append([]byte(os.Getenv(renamedEnv)), 0)
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NAME): %w", err)
	}
	ln, port, err := listen(netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	if err != nil {
		return err
	}
	defer unix.Close(ln)
	u, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(u)
	if err := unix.Bind(u, &unix.SockaddrUnix{Name: "@socklife\x00" + strconv.Itoa(os.Getpid())}); err != nil {
		return fmt.Errorf("binding the abstract socket: %w", err)
	}
	if err := unix.Listen(u, 8); err != nil {
		return err
	}
	if _, err := fmt.Printf("ready %d\n", port); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}
