package snapshot

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The scan costs one readlinkat per fd on the host, a few microseconds
// each, so it runs on several goroutines. They take processes in turn, and
// a process with more than sharedFDs fds (a proxy holding most of the
// host's sockets) is cut into segments that every goroutine helps read.
const (
	sharedFDs  = 4096
	segmentFDs = 1024
)

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
	sc := &scanState{procfd: procfd, key: key, pids: pids, workers: max(1, min(workers, len(pids)))}
	scan := &procScan{scanners: make([]*procScanner, sc.workers)}
	errs := make([]error, sc.workers)
	var wg sync.WaitGroup
	for w := range scan.scanners {
		s := newProcScanner(sc)
		scan.scanners[w] = s
		wg.Go(func() { errs[w] = s.run() })
	}
	wg.Wait()
	return scan, errors.Join(errs...)
}

// scanState is what the scanning goroutines share.
type scanState struct {
	procfd  int
	key     func(inode uint64) (uint64, bool)
	pids    []int32
	next    atomic.Int64 // index in pids of the next process to scan
	workers int

	mu     sync.Mutex
	shared []*sharedProc // big processes with segments nobody has claimed
}

// sharedProc is a big process whose fds several goroutines read.
type sharedProc struct {
	proc     *procInfo
	dir      int // its fd directory; closed by whoever finishes the last segment
	fds      []int32
	next     atomic.Int64 // next segment to claim
	segments int64
	pending  atomic.Int64 // segments not finished yet
}

// claimShared returns a big process with segments left, if any.
func (sc *scanState) claimShared() *sharedProc {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for len(sc.shared) > 0 {
		sp := sc.shared[0]
		if sp.next.Load() < sp.segments {
			return sp
		}
		sc.shared = sc.shared[1:]
	}
	return nil
}

func (sc *scanState) publish(sp *sharedProc) {
	sc.mu.Lock()
	sc.shared = append(sc.shared, sp)
	sc.mu.Unlock()
}

// procInfo is a process whose fds were found; refs point to it.
type procInfo struct {
	pid  int32
	comm string
	// gone marks a process that exited before we read its comm: its sockets
	// are closed now, and its refs are dropped.
	gone bool
}

// fdRef is one wanted socket fd.
type fdRef struct {
	key  uint64
	fd   int32
	proc *procInfo
}

// procScan is the result of a scan, as the workers left it.
type procScan struct{ scanners []*procScanner }

func (r *procScan) stats() ProcStats {
	var st ProcStats
	for _, s := range r.scanners {
		st.add(s.stats)
	}
	st.Sockets = r.count()
	return st
}

func (r *procScan) count() int {
	n := 0
	r.each(func(uint64, Process) { n++ })
	return n
}

// each calls fn for every socket fd found, with its key.
func (r *procScan) each(fn func(key uint64, p Process)) {
	for _, s := range r.scanners {
		for _, chunk := range s.refs {
			for _, ref := range chunk {
				if !ref.proc.gone {
					fn(ref.key, Process{PID: ref.proc.pid, Comm: ref.proc.comm, FD: ref.fd})
				}
			}
		}
	}
}

// procScanner is one scanning goroutine, with buffers it reuses.
type procScanner struct {
	*scanState
	dents []byte  // getdents64 buffer
	fds   []int32 // fd numbers of the process being read
	link  []byte  // readlink buffer: "socket:[" + up to 20 digits + "]"
	path  []byte  // a NUL-terminated path for openat or readlinkat, see cstr
	// refs holds the socket fds found, in chunks of refChunk: a growing
	// slice would copy itself over and over and leave the copies as garbage,
	// which at 100,000 fds is most of the scan's memory.
	refs  [][]fdRef
	stats ProcStats
}

const refChunk = 1024

func newProcScanner(sc *scanState) *procScanner {
	return &procScanner{
		scanState: sc,
		dents:     make([]byte, 32<<10),
		link:      make([]byte, 64),
		path:      make([]byte, 0, 32),
	}
}

func (s *procScanner) addRef(r fdRef) {
	if n := len(s.refs); n == 0 || len(s.refs[n-1]) == refChunk {
		s.refs = append(s.refs, make([]fdRef, 0, refChunk))
	}
	last := &s.refs[len(s.refs)-1]
	*last = append(*last, r)
}

// run helps with big processes first, so that they finish early, then
// takes the next process.
func (s *procScanner) run() error {
	for {
		if sp := s.claimShared(); sp != nil {
			s.readShared(sp)
			continue
		}
		i := s.next.Add(1) - 1
		if i >= int64(len(s.pids)) {
			return nil
		}
		if err := s.scanPID(s.pids[i]); err != nil {
			return err
		}
	}
}

// gone reports errors that mean the process exited while we looked at it.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// scanPID reads the fds of one process, or shares them out if there are many.
func (s *procScanner) scanPID(pid int32) error {
	dir, err := openat(s.procfd, s.cstr(int64(pid), "/fd"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err == nil {
		err = s.listFDs(dir)
		if err != nil {
			unix.Close(dir)
		}
	}
	switch {
	case gone(err):
		return nil
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		s.stats.Denied++
		return nil
	case err != nil:
		return fmt.Errorf("reading /proc/%d/fd: %w", pid, err)
	}
	s.stats.Processes++
	proc := &procInfo{pid: pid}
	if len(s.fds) > sharedFDs && s.workers > 1 {
		sp := &sharedProc{proc: proc, dir: dir, fds: append([]int32(nil), s.fds...)}
		sp.segments = int64((len(sp.fds) + segmentFDs - 1) / segmentFDs)
		sp.pending.Store(sp.segments)
		s.publish(sp)
		s.readShared(sp)
		return nil
	}
	found := s.readFDs(dir, s.fds, proc)
	unix.Close(dir)
	if found > 0 {
		s.readComm(proc)
	}
	return nil
}

// readShared reads segments of a big process until none is left to claim;
// the goroutine that finishes the last one closes the directory and names
// the process.
func (s *procScanner) readShared(sp *sharedProc) {
	for seg := sp.next.Add(1) - 1; seg < sp.segments; seg = sp.next.Add(1) - 1 {
		start := seg * segmentFDs
		s.readFDs(sp.dir, sp.fds[start:min(start+segmentFDs, int64(len(sp.fds)))], sp.proc)
		if sp.pending.Add(-1) == 0 {
			unix.Close(sp.dir)
			s.readComm(sp.proc)
		}
	}
}

// listFDs reads the fd numbers in the fd directory dir into s.fds.
func (s *procScanner) listFDs(dir int) error {
	s.fds = s.fds[:0]
	for {
		n, err := unix.Getdents(dir, s.dents)
		if err != nil || n == 0 {
			return err
		}
		for name := range direntNames(s.dents[:n]) {
			if fd, ok := parseDecimal(name); ok { // not "." or ".."
				s.fds = append(s.fds, int32(fd))
			}
		}
	}
}

// readFDs reads the links of fds in dir and keeps the wanted sockets.
func (s *procScanner) readFDs(dir int, fds []int32, proc *procInfo) (found int) {
	for _, fd := range fds {
		n, err := readlinkat(dir, s.cstr(int64(fd), ""), s.link)
		if err != nil {
			continue // closed since getdents: not an owner any more
		}
		s.stats.FDs++
		inode, ok := parseSocketLink(s.link[:n])
		if !ok {
			continue
		}
		if key, ok := s.key(inode); ok {
			s.addRef(fdRef{key: key, fd: fd, proc: proc})
			found++
		}
	}
	return found
}

// readComm names the process as ss does, or marks it gone.
func (s *procScanner) readComm(proc *procInfo) {
	fd, err := openat(s.procfd, s.cstr(int64(proc.pid), "/comm"), unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		proc.gone = true
		return
	}
	defer unix.Close(fd)
	var buf [64]byte // TASK_COMM_LEN is 16; comm may grow, never past a page
	n, err := unix.Read(fd, buf[:])
	if err != nil {
		proc.gone = true
		return
	}
	if n > 0 && buf[n-1] == '\n' {
		n--
	}
	proc.comm = string(buf[:n])
}

// cstr formats n and suffix as a NUL-terminated path for a system call,
// in a buffer reused from call to call.
func (s *procScanner) cstr(n int64, suffix string) *byte {
	s.path = strconv.AppendInt(s.path[:0], n, 10)
	s.path = append(s.path, suffix...)
	s.path = append(s.path, 0)
	return &s.path[0]
}
