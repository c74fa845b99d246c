package snapshot

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ProcStats says how the /proc scan went, so the CLI can tell the user what it
// could not see ("owners of N processes hidden: not root", as ss does).
type ProcStats struct {
	Processes int // process directories whose fds were read
	FDs       int // file descriptors read
	Sockets   int // socket fds that referred to a wanted inode
	// Denied counts processes whose fd directory we may not read (EACCES):
	// another user's processes when not root.
	Denied int
}

func (s *ProcStats) add(o ProcStats) {
	s.Processes += o.Processes
	s.FDs += o.FDs
	s.Sockets += o.Sockets
	s.Denied += o.Denied
}

// Owner is one file descriptor that refers to a socket.
type Owner struct {
	Inode uint64
	Process
}

// AttachProcesses fills the Processes of each socket (matched by Inode;
// sockets with inode 0 have no file and are skipped) from a scan of /proc,
// like ss -p. A socket shared across fork or dup gets one entry per fd,
// sorted by pid then fd. Existing Processes are replaced.
func AttachProcesses(socks []Socket) (ProcStats, error) {
	return attachProcesses(socks, runtime.GOMAXPROCS(0))
}

func attachProcesses(socks []Socket, workers int) (ProcStats, error) {
	index := make(map[uint64]int32, len(socks))
	for i := range socks {
		socks[i].Processes = nil
		if socks[i].Inode != 0 {
			index[socks[i].Inode] = int32(i)
		}
	}
	if len(index) == 0 {
		return ProcStats{}, nil
	}
	scan, err := scanSockets(func(inode uint64) (uint64, bool) {
		i, ok := index[inode]
		return uint64(i), ok
	}, workers)
	if err != nil {
		return ProcStats{}, err
	}
	groupOwners(socks, scan)
	return scan.stats(), nil
}

// groupOwners hands each socket its owners (a counting sort by socket
// index), carved out of one backing array: a snapshot may hold 100,000
// sockets, and one allocation each would double the work of the scan.
func groupOwners(socks []Socket, scan *procScan) {
	bounds := make([]int32, len(socks)+1)
	scan.each(func(sock uint64, _ Process) { bounds[sock]++ })
	for i := 1; i < len(bounds); i++ {
		bounds[i] += bounds[i-1]
	}
	// Now bounds[i] is where socket i's owners end; filling from there
	// backwards leaves it where they start, and bounds[i+1] where they end.
	procs := make([]Process, bounds[len(socks)])
	scan.each(func(sock uint64, p Process) {
		bounds[sock]--
		procs[bounds[sock]] = p
	})
	for i := range socks {
		p := procs[bounds[i]:bounds[i+1]:bounds[i+1]]
		if len(p) == 0 {
			continue
		}
		if len(p) > 1 {
			slices.SortFunc(p, compareProcess)
		}
		socks[i].Processes = p
	}
}

func compareProcess(a, b Process) int {
	return cmp.Or(cmp.Compare(a.PID, b.PID), cmp.Compare(a.FD, b.FD))
}

// ScanSocketOwners walks /proc/PID/fd of every process and returns the fds
// that link to "socket:[INODE]" for which want(INODE) is true. want is called
// from several goroutines at once. Threads share their process's fd table, so
// only /proc/PID is read, never /proc/PID/task. Processes that exit during the
// scan are skipped; ones we may not read are counted in ProcStats.Denied.
// The result is in no particular order.
func ScanSocketOwners(want func(inode uint64) bool) ([]Owner, ProcStats, error) {
	return scanSocketOwners(want, runtime.GOMAXPROCS(0))
}

func scanSocketOwners(want func(inode uint64) bool, workers int) ([]Owner, ProcStats, error) {
	scan, err := scanSockets(func(inode uint64) (uint64, bool) { return inode, want(inode) }, workers)
	if err != nil {
		return nil, ProcStats{}, err
	}
	owners := make([]Owner, 0, scan.count())
	scan.each(func(inode uint64, p Process) { owners = append(owners, Owner{Inode: inode, Process: p}) })
	return owners, scan.stats(), nil
}

// scanSockets scans every process's fds with workers goroutines. key maps
// the inode of each socket fd to what the caller wants to file it under,
// and says whether the caller wants it at all.
func scanSockets(key func(inode uint64) (uint64, bool), workers int) (*procScan, error) {
	procfd, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /proc: %w", err)
	}
	defer unix.Close(procfd)
	pids, err := listPIDs(procfd)
	if err != nil {
		return nil, err
	}
	scan := &procScan{scanners: make([]*procScanner, max(1, min(workers, len(pids))))}
	errs := make([]error, len(scan.scanners))
	var next atomic.Int64 // index of the next pid to scan: fast workers take more
	var wg sync.WaitGroup
	for w := range scan.scanners {
		s := newProcScanner(procfd, key)
		scan.scanners[w] = s
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(pids)); i = next.Add(1) - 1 {
				if err := s.scanPID(pids[i]); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return scan, errors.Join(errs...)
}

// procScan is the result of a scan, as the workers left it.
type procScan struct{ scanners []*procScanner }

func (r *procScan) stats() ProcStats {
	var st ProcStats
	for _, s := range r.scanners {
		st.add(s.stats)
	}
	return st
}

func (r *procScan) count() int {
	n := 0
	for _, s := range r.scanners {
		n += s.nrefs
	}
	return n
}

// each calls fn for every socket fd found, with its key.
func (r *procScan) each(fn func(key uint64, p Process)) {
	for _, s := range r.scanners {
		for _, chunk := range s.refs {
			for _, ref := range chunk {
				proc := &s.procs[ref.proc]
				fn(ref.key, Process{PID: proc.pid, Comm: proc.comm, FD: ref.fd})
			}
		}
	}
}

// procScanner reads the fd directories of processes; one per goroutine, so
// that its buffers are reused without locking.
type procScanner struct {
	procfd int
	key    func(inode uint64) (uint64, bool)
	dents  []byte // getdents64 buffer
	link   []byte // readlink buffer: "socket:[" + up to 20 digits + "]"
	path   []byte // "PID/fd\x00", rebuilt per process
	// refs holds the socket fds found, in chunks of refChunk: a growing
	// slice would copy itself over and over and leave the copies as garbage,
	// which at 100,000 fds is most of the scan's memory.
	refs  [][]fdRef
	nrefs int
	procs []procInfo // the processes refs point into
	stats ProcStats
}

const refChunk = 1024

// fdRef is one wanted socket fd.
type fdRef struct {
	key  uint64
	fd   int32
	proc int32 // index in procScanner.procs
}

type procInfo struct {
	pid  int32
	comm string
}

func newProcScanner(procfd int, key func(uint64) (uint64, bool)) *procScanner {
	return &procScanner{
		procfd: procfd,
		key:    key,
		dents:  make([]byte, 32<<10),
		link:   make([]byte, 64),
		path:   make([]byte, 0, 32),
	}
}

func (s *procScanner) addRef(r fdRef) {
	if n := len(s.refs); n == 0 || len(s.refs[n-1]) == refChunk {
		s.refs = append(s.refs, make([]fdRef, 0, refChunk))
	}
	last := &s.refs[len(s.refs)-1]
	*last = append(*last, r)
	s.nrefs++
}

// truncateRefs forgets the refs after the first n.
func (s *procScanner) truncateRefs(n int) {
	full, rest := n/refChunk, n%refChunk
	if rest == 0 {
		s.refs = s.refs[:full]
	} else {
		s.refs = s.refs[:full+1]
		s.refs[full] = s.refs[full][:rest]
	}
	s.nrefs = n
}

// gone reports errors that mean the process exited while we looked at it.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// scanPID adds the wanted socket fds of one process to s.refs.
func (s *procScanner) scanPID(pid int32) error {
	dir, err := s.openat(pid, "fd", unix.O_DIRECTORY)
	switch {
	case gone(err):
		return nil
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		s.stats.Denied++
		return nil
	case err != nil:
		return fmt.Errorf("opening /proc/%d/fd: %w", pid, err)
	}
	defer unix.Close(dir)
	first := s.nrefs
	if err := s.readFDs(dir, int32(len(s.procs))); err != nil {
		s.truncateRefs(first)
		if gone(err) {
			return nil
		}
		if errors.Is(err, unix.EACCES) {
			s.stats.Denied++
			return nil
		}
		return fmt.Errorf("reading /proc/%d/fd: %w", pid, err)
	}
	s.stats.Processes++
	if s.nrefs == first {
		return nil
	}
	comm, err := s.readComm(pid)
	if err != nil {
		// The process exited after we read its fds: its sockets are closed now.
		s.truncateRefs(first)
		return nil
	}
	s.procs = append(s.procs, procInfo{pid: pid, comm: comm})
	s.stats.Sockets += s.nrefs - first
	return nil
}

// openat opens /proc/PID/name, building the path in a reused buffer.
func (s *procScanner) openat(pid int32, name string, flags int) (int, error) {
	s.path = strconv.AppendInt(s.path[:0], int64(pid), 10)
	s.path = append(s.path, '/')
	s.path = append(s.path, name...)
	s.path = append(s.path, 0)
	return openat(s.procfd, &s.path[0], flags|unix.O_RDONLY|unix.O_CLOEXEC)
}

// readFDs reads the links of every fd in the fd directory dir of the
// process that will be s.procs[proc].
func (s *procScanner) readFDs(dir int, proc int32) error {
	for {
		n, err := unix.Getdents(dir, s.dents)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		for name := range direntNames(s.dents[:n]) {
			s.readFD(dir, proc, name)
		}
	}
}

// readFD reads one fd link. name is a dirent name, followed by its NUL in
// the getdents buffer, so the kernel can read it in place.
func (s *procScanner) readFD(dir int, proc int32, name []byte) {
	fd, ok := parseDecimal(name) // also skips "." and ".."
	if !ok {
		return
	}
	n, err := readlinkat(dir, &name[0], s.link)
	if err != nil {
		return // closed since getdents: not an owner any more
	}
	s.stats.FDs++
	inode, ok := parseSocketLink(s.link[:n])
	if !ok {
		return
	}
	if key, ok := s.key(inode); ok {
		s.addRef(fdRef{key: key, fd: int32(fd), proc: proc})
	}
}

// readComm returns the process name, as ss prints it.
func (s *procScanner) readComm(pid int32) (string, error) {
	fd, err := s.openat(pid, "comm", 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	var buf [64]byte // TASK_COMM_LEN is 16; comm may grow, never past a page
	n, err := unix.Read(fd, buf[:])
	if err != nil {
		return "", err
	}
	if n > 0 && buf[n-1] == '\n' {
		n--
	}
	return string(buf[:n]), nil
}
