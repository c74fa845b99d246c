package ssfilter

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

var services = sync.OnceValue(func() map[string]int {
	m := map[string]int{}
	f, err := os.Open("/etc/services")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		num, proto, ok := strings.Cut(fields[1], "/")
		port, err := strconv.Atoi(num)
		if !ok || proto != "tcp" || err != nil {
			continue
		}
		for _, name := range append([]string{fields[0]}, fields[2:]...) {
			if _, dup := m[name]; !dup { // the first line wins, as in getservbyname
				m[name] = port
			}
		}
	}
	return m
})

// etcService is getservbyname(name, "tcp") over /etc/services: exact,
// case-sensitive names and aliases.
func etcService(name string) (int, bool) {
	p, ok := services()[name]
	return p, ok
}

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

// cgroupIDFromPath finds the cgroup2 mount and takes the inode number of
// path below it: on cgroup2 (kernfs) the inode number is the cgroup id
// that INET_DIAG_CGROUP_ID reports.
func cgroupIDFromPath(path string) (uint64, error) {
	mnt, err := cgroup2Mount()
	if err != nil {
		return 0, err
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(mnt, path), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
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
