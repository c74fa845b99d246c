package backlog

import (
	"context"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
	"golang.org/x/sys/unix"
)

// acceptor is a loopback listener with a chosen backlog and an accept loop
// whose pace the test sets: it measures, per client port, when accept()
// returned and whether the handshake needed a SYN-ACK retransmit.
type acceptor struct {
	fd   int
	port uint16
	// pace is the pause before each accept(); a negative pace stops accepting.
	pace atomic.Int64
	// slow: the pace may change, so never block in accept(); a prompt
	// acceptor (!slow) blocks there and so answers at once.
	slow bool
	stop atomic.Bool
	done chan struct{}

	// count is len(accepted), for polling without the lock: a poller
	// preempted while holding it would stall the real-time acceptor.
	count    atomic.Int64
	pauses   atomic.Int64 // turns of the loop that saw the pause
	mu       sync.Mutex
	accepted map[uint16]time.Time // client port -> accept() returned
	// called is when that accept() was called: the kernel's dequeue lies
	// between the two, whatever delays the test's threads suffer
	called    map[uint16]time.Time
	resent    map[uint16]bool // the child's handshake took a SYN-ACK retransmit
	lastAt    time.Time       // the last accept() returned
	lastCall  time.Time       // and was called
	conns     []int
	resumedAt time.Time
}

func newAcceptor(t *testing.T, backlog int, slow bool) *acceptor {
	t.Helper()
	fd, port := testutil.RawListener(t, [4]byte{127, 0, 0, 1}, 0, backlog)
	a := &acceptor{fd: fd, port: port, done: make(chan struct{}),
		accepted: map[uint16]time.Time{}, called: map[uint16]time.Time{}, resent: map[uint16]bool{}, slow: slow}
	t.Cleanup(func() {
		a.stop.Store(true)
		// wakes a blocking accept(): the listener is done with
		unix.Shutdown(fd, unix.SHUT_RD)
		<-a.done
		for _, c := range a.conns {
			unix.Close(c)
		}
		// fd: RawListener's cleanup, next
	})
	go a.loop()
	return a
}

// loop accepts at the set pace. poll() with a short timeout lets it see
// stop without closing the listener, which the test still wants to dump.
func (a *acceptor) loop() {
	defer close(a.done)
	urgent() // requireRealtime checked it works
	for !a.stop.Load() {
		pace := time.Duration(a.pace.Load())
		if pace < 0 {
			a.pauses.Add(1)
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if pace > 0 || a.slow {
			time.Sleep(pace)
			fds := []unix.PollFd{{Fd: int32(a.fd), Events: unix.POLLIN}}
			if n, _ := unix.Poll(fds, 20); n < 1 || time.Duration(a.pace.Load()) < 0 {
				continue
			}
		}
		// else block in accept(): the kernel wakes this thread directly
		called := time.Now()
		nfd, sa, err := unix.Accept4(a.fd, unix.SOCK_CLOEXEC)
		now := time.Now()
		if err != nil {
			continue
		}
		info, _ := unix.GetsockoptTCPInfo(nfd, unix.IPPROTO_TCP, unix.TCP_INFO)
		port := uint16(sa.(*unix.SockaddrInet4).Port)
		a.mu.Lock()
		a.accepted[port], a.called[port] = now, called
		// a child's total_retrans starts at its request's SYN-ACK retransmits
		a.resent[port] = info != nil && info.Total_retrans > 0
		a.lastAt, a.lastCall = now, called
		a.conns = append(a.conns, nfd)
		a.mu.Unlock()
		a.count.Add(1)
	}
}

func (a *acceptor) setPace(d time.Duration) {
	a.mu.Lock()
	if d >= 0 && a.pace.Load() < 0 {
		a.resumedAt = time.Now()
	}
	a.mu.Unlock()
	a.pace.Store(int64(d))
}

// acceptedBetween returns an accept the test timed in [from, to).
func (a *acceptor) acceptedBetween(from, to time.Time) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range a.accepted {
		if !at.Before(from) && at.Before(to) {
			return at, true
		}
	}
	return time.Time{}, false
}

// firstAcceptAfter returns the earliest accept the test timed at or after from.
func (a *acceptor) firstAcceptAfter(from time.Time) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var first time.Time
	for _, at := range a.accepted {
		if !at.Before(from) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

// pause stops accepting and returns when the last accept() was called and
// when it returned: the kernel's last dequeue lies between the two. Once
// the loop has come round to the pause, no accept() is in flight.
func (a *acceptor) pause(t *testing.T) (called, returned time.Time) {
	t.Helper()
	a.setPace(-1)
	seen := a.pauses.Load()
	testutil.WaitFor(t, 5*time.Second, "the acceptor to pause", func() bool { return a.pauses.Load() > seen })
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastCall, a.lastAt
}

// dialers are n clients of port, each dialling until it has connected or
// ctx ends; each attempt gives up after attempt, like a client with a
// connect timeout, so a dropped SYN is retried at once rather than after the
// kernel's 1 s backoff. Per local port, started is when the connect() that
// succeeded was called and connected when it returned: the child entered
// the accept queue after the first (when, the test cannot see: its final
// ACK may be processed in the client's connect(), later by ksoftirqd, or,
// dropped on overflow, at a retransmit).
type dialers struct {
	mu        sync.Mutex
	started   map[uint16]time.Time
	connected map[uint16]time.Time
	fds       map[uint16]int
	wg        sync.WaitGroup
}

func dial(ctx context.Context, port uint16, n int, attempt, spread time.Duration) *dialers {
	d := &dialers{started: map[uint16]time.Time{}, connected: map[uint16]time.Time{}, fds: map[uint16]int{}}
	for i := range n {
		d.wg.Go(func() {
			urgent() // requireRealtime checked it works
			time.Sleep(spread * time.Duration(i))
			for ctx.Err() == nil {
				start := time.Now()
				fd, local, err := connect(port, attempt)
				if err != nil {
					if time.Since(start) < attempt/2 {
						time.Sleep(attempt) // not a timeout: do not spin at real-time priority
					}
					continue
				}
				at := time.Now()
				// A byte, so a connection whose final ACK the server
				// dropped (with a SYN cookie: no retransmit from it) is
				// rebuilt by this segment or its retransmits.
				unix.Write(fd, []byte{1})
				d.mu.Lock()
				d.started[local], d.connected[local] = start, at
				d.fds[local] = fd
				d.mu.Unlock()
				<-ctx.Done() // hold the connection to the end
				unix.Close(fd)
				return
			}
		})
	}
	return d
}

// connect makes one blocking connect() to 127.0.0.1:port that gives up
// after timeout (SO_SNDTIMEO), and returns the socket and its local port.
// Blocking, so that the time taken after it returns is when connect()
// returned, not when Go's poller got round to the goroutine.
func connect(port uint16, timeout time.Duration) (int, uint16, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: int(port)}); err != nil {
		unix.Close(fd) // EINPROGRESS: timed out with the SYN unanswered
		return -1, 0, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	return fd, uint16(sa.(*unix.SockaddrInet4).Port), nil
}

// resent lists the clients that retransmitted their byte: the server had
// no child for them when connect() returned (a final ACK dropped on
// overflow), so their connection entered the accept queue later.
func (d *dialers) resent() map[uint16]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[uint16]bool{}
	for port, fd := range d.fds {
		if info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil && info.Total_retrans > 0 {
			out[port] = true
		}
	}
	return out
}

func (d *dialers) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.connected)
}

// urgent gives the calling goroutine an OS thread of its own, SCHED_FIFO:
// the test's own clock readings after connect() and accept() are the
// measure socklife is held to, and the prompt acceptor must answer within a
// millisecond. On this shared 2-core machine (load average 7) threads at
// nice -20 were still preempted for 5-20 ms between the syscall and
// time.Now(). The thread ends with the goroutine (never unlocked); the
// threads block in syscalls, so they cannot starve the machine.
func urgent() error {
	runtime.LockOSThread()
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}
	return unix.SchedSetAttr(0, &attr, 0)
}

// requireRealtime fails the test where urgent cannot work (no
// CAP_SYS_NICE, or no real-time budget for this cgroup): the timings
// checked would then measure the machine's load, not socklife.
func requireRealtime(t *testing.T) {
	t.Helper()
	errc := make(chan error)
	go func() { errc <- urgent() }() // its thread ends with it
	if err := <-errc; err != nil {
		t.Fatalf("SCHED_FIFO for the test's acceptors and clients: %v", err)
	}
}

var ssDrops = regexp.MustCompile(`skmem:\(.*,d(\d+)\)`)

// ssDropsOf runs ss -tlnm for the listener on port and returns its sk_drops.
func ssDropsOf(t *testing.T, port uint16) uint64 {
	t.Helper()
	out, err := exec.Command("ss", "-tlnm", "sport = :"+strconv.Itoa(int(port))).CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v: %s", err, out)
	}
	m := ssDrops.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no skmem drops in ss output:\n%s", out)
	}
	n, err := strconv.ParseUint(string(m[1]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
