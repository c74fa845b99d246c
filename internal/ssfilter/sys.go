package ssfilter

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/socklife/socklife/internal/netdb"

	"golang.org/x/sys/unix"
)

// etcService is getservbyname(name, "tcp") over /etc/services: exact,
// case-sensitive names and aliases.
func etcService(name string) (int, bool) { return netdb.System().Port(name, "tcp") }

// devIndex is ss's parse_devcond: a device name, else a number
// (strtoul base 0, at most 2^32-1).
func (p *parser) devIndex(w string) (uint32, error) {
	lookup := p.opts.Ifindex
	if lookup == nil {
		lookup = func(name string) (uint32, bool) {
			ifc, err := net.InterfaceByName(name)
			if err != nil {
				return 0, false
			}
			return uint32(ifc.Index), true
		}
	}
	if idx, ok := lookup(w); ok && idx != 0 {
		return idx, nil
	}
	// ll_name_to_index also reads "if<N>" (sscanf "if%u": junk may follow).
	if rest, ok := strings.CutPrefix(w, "if"); ok {
		d := 0
		for d < len(rest) && rest[d] >= '0' && rest[d] <= '9' {
			d++
		}
		if n, err := strconv.ParseUint(rest[:d], 10, 32); err == nil && n != 0 {
			return uint32(n), nil
		}
	}
	n, rest, ok := strtoul(w)
	if !ok || rest != "" || n > 1<<32-1 {
		return 0, fmt.Errorf("cannot parse device %q", w)
	}
	return uint32(n), nil
}

func (p *parser) cgroupID(path string) (uint64, error) {
	if p.opts.CgroupID != nil {
		return p.opts.CgroupID(path)
	}
	return cgroupIDFromPath(path)
}

// cgroupIDFromPath is iproute2's get_cgroup2_id: the path is first taken
// as a file name (from the working directory) and its 8-byte file handle
// is the id, which is the cgroup id when the file is on cgroup2; only if
// that fails is it taken below the cgroup2 mount, without leading
// slashes. So "cgroup /" is the root directory's handle (no cgroup) on a
// file system with 8-byte handles, and an error elsewhere.
func cgroupIDFromPath(path string) (uint64, error) {
	if id, ok := handle8(unix.AT_FDCWD, path); ok {
		return id, nil
	}
	rel := strings.TrimLeft(path, "/")
	if rel == "" {
		return 0, fmt.Errorf("invalid cgroup2 path")
	}
	mnt, err := cgroup2Mount()
	if err != nil {
		return 0, err
	}
	fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if id, ok := handle8(fd, rel); ok {
		return id, nil
	}
	return 0, fmt.Errorf("no cgroup2 id for %q", path)
}

// handle8 is name_to_handle_at with room for 8 bytes, as ss asks: a
// longer handle fails (EOVERFLOW in ss).
func handle8(dirfd int, path string) (uint64, bool) {
	h, _, err := unix.NameToHandleAt(dirfd, path, 0)
	if err != nil || h.Size() != 8 {
		return 0, false
	}
	return binary.NativeEndian.Uint64(h.Bytes()), true
}

func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "cgroup2" {
			return fields[1], nil
		}
	}
	return "", fmt.Errorf("no cgroup2 mount")
}

// ephemeral is ss's is_ephemeral range.
func (o *Options) ephemeral() [2]int {
	if o.Ephemeral != [2]int{} {
		return o.Ephemeral
	}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		var lo, hi int
		if n, _ := fmt.Sscan(string(b), &lo, &hi); n == 2 {
			return [2]int{lo, hi}
		}
	}
	return [2]int{1024, 4999}
}
