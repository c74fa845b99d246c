package exporter

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcFDs reads a process's open fds (the entries of /proc/PID/fd) and its
// soft RLIMIT_NOFILE (/proc/PID/limits) under proc, the procfs mount: what
// a CLOSE_WAIT leak runs into ("too many open files"). ok is false when
// either is unreadable, as for a process that has exited.
func ProcFDs(proc string) func(pid uint32) (open, max uint64, ok bool) {
	return func(pid uint32) (uint64, uint64, bool) {
		dir := filepath.Join(proc, strconv.FormatUint(uint64(pid), 10))
		max, ok := softNoFile(filepath.Join(dir, "limits"))
		if !ok {
			return 0, 0, false
		}
		open, ok := openFDs(filepath.Join(dir, "fd"))
		return open, max, ok
	}
}

// openFDs counts the entries of a /proc/PID/fd. Since Linux 6.2 its size is
// that count, one stat instead of a listing (a proxy holding 100k
// connections has 100k entries to list at every scrape); before, the size
// is 0 and the entries are counted.
func openFDs(dir string) (uint64, bool) {
	if st, err := os.Stat(dir); err != nil {
		return 0, false
	} else if st.Size() > 0 {
		return uint64(st.Size()), true
	}
	d, err := os.Open(dir)
	if err != nil {
		return 0, false
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, false
	}
	return uint64(len(names)), true
}

// softNoFile reads the soft "Max open files" of a limits file:
//
//	Limit                     Soft Limit           Hard Limit           Units
//	Max open files            1024                 524288               files
func softNoFile(path string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), "Max open files")
		if !found {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, false
		}
		n, err := strconv.ParseUint(fields[0], 10, 64) // "unlimited" is no number: unknown
		return n, err == nil
	}
	return 0, false
}
