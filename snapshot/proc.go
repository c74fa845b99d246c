package snapshot

import (
	"cmp"
	"runtime"
	"slices"
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
