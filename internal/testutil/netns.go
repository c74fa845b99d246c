package testutil

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NetnsRunDir is where `ip netns add` keeps named namespaces.
const NetnsRunDir = "/run/netns"

var netnsSeq atomic.Int32

// NamedNetns creates a network namespace bind-mounted under /run/netns, as
// `ip netns add` does (without needing the ip binary, which the kernel-matrix
// VMs lack), brings its loopback up, and removes it when the test ends.
// It returns the namespace's path.
func NamedNetns(tb testing.TB) string {
	tb.Helper()
	RequireRoot(tb)
	path := filepath.Join(NetnsRunDir, fmt.Sprintf("socklife-test-%d-%d", os.Getpid(), netnsSeq.Add(1)))
	tb.Cleanup(func() {
		if err := delNetns(path); err != nil {
			tb.Errorf("%v", err)
		}
	})
	if err := addNetns(path); err != nil {
		tb.Fatal(err)
	}
	return path
}

// ChurnNetns adds and deletes named namespaces, perSecond of each, as a
// container host does, until the test ends: every walk of /run/netns
// meets namespaces half made or half gone.
func ChurnNetns(tb testing.TB, perSecond int) {
	tb.Helper()
	RequireRoot(tb)
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		prev := ""
		for {
			path := filepath.Join(NetnsRunDir, fmt.Sprintf("socklife-churn-%d-%d", os.Getpid(), netnsSeq.Add(1)))
			err := addNetns(path)
			if prev != "" {
				err = errors.Join(err, delNetns(prev))
			}
			prev = path
			if err == nil {
				select {
				case <-tick.C:
					continue
				case <-stop:
				}
			}
			done <- errors.Join(err, delNetns(prev))
			return
		}
	}()
	tb.Cleanup(func() {
		close(stop)
		if err := <-done; err != nil {
			tb.Errorf("namespace churn: %v", err)
		}
	})
}

// addNetns makes a namespace and bind-mounts it at path, as `ip netns
// add` does: the file first, the mount a moment later.
func addNetns(path string) error {
	if err := os.MkdirAll(NetnsRunDir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		err = unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
		if err == nil {
			err = LoopbackUp()
		}
		// The thread must go back: it may be the main thread, whose
		// namespace /proc/self/ns/net reports as the whole process's.
		// If it cannot, it stays locked and dies with this goroutine.
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		if err != nil {
			err = fmt.Errorf("setting up namespace %s: %w", path, err)
		}
		errc <- err
	}()
	return <-errc
}

// delNetns undoes addNetns as `ip netns del` does: unmount, then unlink.
func delNetns(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmounting %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// InNetns runs fn with the calling goroutine's thread moved into the
// namespace at path, so that the sockets fn creates live there. fn runs on
// the test goroutine and may call t.Fatal. If the thread cannot return to
// its own namespace it stays locked and dies with the goroutine.
func InNetns(tb testing.TB, path string, fn func()) {
	tb.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatal(err)
	}
	defer func() {
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		unix.Close(orig)
	}()
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	err = unix.Setns(target, unix.CLONE_NEWNET)
	unix.Close(target)
	if err != nil {
		tb.Fatalf("entering %s: %v", path, err)
	}
	fn()
}

// LoopbackUp sets IFF_UP on lo in the calling thread's namespace; a new
// network namespace starts with it down.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for ioctl: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}

// AddLinkLocal gives lo of the calling thread's namespace the link-local
// address fe80::1/64 (ifconfig's SIOCSIFADDR, no iproute2 needed): a
// link-local address, which means nothing without its zone, on a device
// every namespace has. Call it inside InNetns.
func AddLinkLocal() (netip.Addr, error) {
	addr := netip.MustParseAddr("fe80::1")
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return addr, fmt.Errorf("socket for ioctl: %w", err)
	}
	defer unix.Close(fd)
	// struct in6_ifreq
	req := struct {
		addr      [16]byte
		prefixlen uint32
		ifindex   int32
	}{addr: addr.As16(), prefixlen: 64, ifindex: 1} // lo is 1 in every namespace
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCSIFADDR, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return addr, fmt.Errorf("adding %s to lo: %w", addr, errno)
	}
	// A new IPv6 address is tentative until duplicate address detection
	// is done (asynchronously, even on lo): bind() refuses it until then.
	sa := &unix.SockaddrInet6{Addr: addr.As16(), ZoneId: 1}
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := unix.Bind(fd, sa)
		if err == nil {
			return addr, nil
		}
		if err != unix.EADDRNOTAVAIL || time.Now().After(deadline) {
			return addr, fmt.Errorf("%s on lo not usable: %w", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
