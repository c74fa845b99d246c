package snapshot

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reading /proc without allocating per entry: the owner scan reads one link
// per fd on the host, 100,000 on a busy proxy.

// listPIDs returns the numeric entries of /proc: one per process (thread
// group), never per thread.
func listPIDs(procfd int) ([]int32, error) {
	dir, err := unix.Openat(procfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /proc: %w", err)
	}
	defer unix.Close(dir)
	var pids []int32
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(dir, buf)
		if err != nil {
			return nil, fmt.Errorf("reading /proc: %w", err)
		}
		if n == 0 {
			return pids, nil
		}
		for name := range direntNames(buf[:n]) {
			if pid, ok := parseDecimal(name); ok && pid > 0 && pid <= 1<<31-1 {
				pids = append(pids, int32(pid))
			}
		}
	}
}

// Offsets in struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16,
// d_type u8, then the NUL-terminated name.
const (
	direntReclen = 16
	direntName   = 19
)

// direntNames yields the names in a getdents64 buffer, without the NUL.
func direntNames(buf []byte) func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for off := 0; off < len(buf); {
			reclen := int(binary.NativeEndian.Uint16(buf[off+direntReclen:]))
			if !yield(cstring(buf[off+direntName : off+reclen])) {
				return
			}
			off += reclen
		}
	}
}

func cstring(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// parseSocketLink returns INODE from an fd link "socket:[INODE]".
func parseSocketLink(link []byte) (uint64, bool) {
	const prefix = "socket:["
	if len(link) < len(prefix)+2 || string(link[:len(prefix)]) != prefix || link[len(link)-1] != ']' {
		return 0, false
	}
	return parseDecimal(link[len(prefix) : len(link)-1])
}

// parseDecimal parses an unsigned decimal without allocating, unlike
// strconv.ParseUint(string(b)), which copies b when it escapes.
func parseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		d := uint64(c - '0')
		if d > 9 || v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// openat and readlinkat take NUL-terminated names straight from our buffers:
// unix.Openat and unix.Readlinkat take Go strings and copy each into a fresh
// C string, two allocations per fd that the scan of 100,000 fds can do without.
func openat(dirfd int, path *byte, flags int) (int, error) {
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(path)), uintptr(flags), 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

func readlinkat(dirfd int, path *byte, buf []byte) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(path)),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
