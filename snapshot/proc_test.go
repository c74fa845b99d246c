package snapshot

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/testutil"
)

// testComm is what the kernel calls this test binary: its name cut to 15 bytes.
var testComm = func() string {
	name := filepath.Base(os.Args[0])
	return name[:min(len(name), 15)]
}()

// newSocket opens a TCP socket and returns it with its inode, the number
// sock_diag reports as idiag_inode.
func newSocket(t *testing.T) (*os.File, uint64) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "tcp socket")
	t.Cleanup(func() { f.Close() })
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return f, st.Ino
}

func TestAttachProcessesOwnSocket(t *testing.T) {
	testutil.RequireRoot(t)
	f, inode := newSocket(t)
	dup, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)
	// The timewait socket (inode 0) sits between to show it gets nothing.
	socks := []Socket{{Inode: 0}, {Inode: inode}}
	stats, err := AttachProcesses(socks)
	if err != nil {
		t.Fatal(err)
	}
	me := int32(os.Getpid())
	want := []Process{{PID: me, Comm: testComm, FD: int32(f.Fd())}, {PID: me, Comm: testComm, FD: int32(dup)}}
	if !slices.Equal(socks[1].Processes, want) {
		t.Errorf("owners of socket %d: got %+v, want %+v (the fd and its dup, by fd)", inode, socks[1].Processes, want)
	}
	if socks[0].Processes != nil {
		t.Errorf("socket with inode 0 got owners %+v, want none", socks[0].Processes)
	}
	if stats.Sockets != 2 || stats.Denied != 0 || stats.Processes < 2 || stats.FDs < 2 {
		t.Errorf("stats %+v: want 2 sockets, 0 denied, several processes and fds", stats)
	}
}

func TestAttachProcessesInherited(t *testing.T) {
	testutil.RequireRoot(t)
	f, inode := newSocket(t)
	child := exec.Command("sleep", "60")
	child.ExtraFiles = []*os.File{f} // fd 3 in the child
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		child.Process.Kill()
		child.Wait()
	})
	// Until exec, the child is a copy of us: wait for the comm ss would print.
	comm := fmt.Sprintf("/proc/%d/comm", child.Process.Pid)
	testutil.WaitFor(t, 5*time.Second, "the child to exec sleep", func() bool {
		b, _ := os.ReadFile(comm)
		return string(b) == "sleep\n"
	})
	socks := []Socket{{Inode: inode}}
	if _, err := AttachProcesses(socks); err != nil {
		t.Fatal(err)
	}
	want := []Process{
		{PID: int32(os.Getpid()), Comm: testComm, FD: int32(f.Fd())},
		{PID: int32(child.Process.Pid), Comm: "sleep", FD: 3},
	}
	slices.SortFunc(want, compareProcess)
	if !slices.Equal(socks[0].Processes, want) {
		t.Errorf("owners of inherited socket: got %+v, want %+v", socks[0].Processes, want)
	}
}

func TestAttachProcessesClosedSocket(t *testing.T) {
	testutil.RequireRoot(t)
	f, inode := newSocket(t)
	f.Close()
	socks := []Socket{{Inode: inode, Processes: []Process{{PID: 1}}}}
	if _, err := AttachProcesses(socks); err != nil {
		t.Fatal(err)
	}
	if socks[0].Processes != nil {
		t.Errorf("closed socket %d attributed to %+v", inode, socks[0].Processes)
	}
}

// TestScanSocketOwnersMatchesNaive compares the scan with a plain
// os.ReadDir/os.Readlink walk over processes that hold many sockets.
func TestScanSocketOwnersMatchesNaive(t *testing.T) {
	testutil.RequireRoot(t)
	conns := testutil.OpenConns(t, 3000)
	pids := conns.PIDs()
	naive := naiveOwners(t, pids)
	if len(naive) != conns.Sockets() {
		t.Fatalf("naive scan found %d sockets in the holders, want %d", len(naive), conns.Sockets())
	}
	for _, workers := range []int{1, 2} {
		owners, _, err := scanSocketOwners(func(uint64) bool { return true }, workers)
		if err != nil {
			t.Fatal(err)
		}
		got := owners[:0:0]
		for _, o := range owners {
			if slices.Contains(pids, int(o.PID)) {
				got = append(got, o)
			}
		}
		slices.SortFunc(got, compareOwner)
		if !slices.Equal(got, naive) {
			t.Errorf("%d workers: scan and naive walk differ: %d vs %d owners", workers, len(got), len(naive))
		}
	}
}

func compareOwner(a, b Owner) int {
	return compareProcess(a.Process, b.Process)
}

// naiveOwners lists the socket fds of pids the obvious way, sorted by pid, fd.
func naiveOwners(tb testing.TB, pids []int) []Owner {
	tb.Helper()
	var owners []Owner
	for _, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // exited
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		for _, e := range ents {
			link, err := os.Readlink(dir + "/" + e.Name())
			var inode uint64
			if _, serr := fmt.Sscanf(link, "socket:[%d]", &inode); err != nil || serr != nil {
				continue
			}
			fd, _ := strconv.Atoi(e.Name())
			owners = append(owners, Owner{Inode: inode, Process: Process{
				PID: int32(pid), FD: int32(fd), Comm: strings.TrimSuffix(string(comm), "\n"),
			}})
		}
	}
	slices.SortFunc(owners, compareOwner)
	return owners
}

// TestScanDeniedWhenNotRoot runs a scan as nobody in a child: it must not
// fail, and must count the processes whose fds it could not read, which is
// what lets the CLI say how much it hid.
func TestScanDeniedWhenNotRoot(t *testing.T) {
	if os.Getenv("SOCKLIFE_PROC_TEST_NOBODY") == "1" {
		_, stats, err := ScanSocketOwners(func(uint64) bool { return true })
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Printf("denied %d\n", stats.Denied)
		os.Exit(0)
	}
	testutil.RequireRoot(t)
	// nobody must be able to run the binary: go test keeps it in a 0700
	// directory, and t.TempDir nests two of those.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "proc.test")
	if err := exec.Command("cp", os.Args[0], exe).Run(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestScanDeniedWhenNotRoot$")
	cmd.Env = append(os.Environ(), "SOCKLIFE_PROC_TEST_NOBODY=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scan as nobody: %v: %s", err, out)
	}
	// At least pid 1 and this test belong to root.
	var denied int
	if _, err := fmt.Sscanf(string(out), "denied %d", &denied); err != nil || denied < 2 {
		t.Errorf("scan as nobody said %q, want denied >= 2", out)
	}
}

// BenchmarkAttachProcesses times the owner scan over ~20,000 socket fds
// against two peers in the same run, alternating: the same scan on one
// goroutine, and a naive os.ReadDir/os.Readlink walk. Each contender sees
// every process on the host; the sockets asked about are the holders'.
func BenchmarkAttachProcesses(b *testing.B) {
	testutil.RequireRoot(b)
	conns := testutil.OpenConns(b, 10000)
	pids := conns.PIDs()
	var socks []Socket
	for _, o := range naiveOwners(b, pids) {
		socks = append(socks, Socket{Inode: o.Inode})
	}
	allPIDs := func() []int {
		ents, _ := os.ReadDir("/proc")
		var pids []int
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	contenders := []struct {
		name string
		run  func()
	}{
		{"AttachProcesses", func() { attachProcesses(socks, 2) }},
		{"AttachProcesses/1-goroutine", func() { attachProcesses(socks, 1) }},
		{"naive ReadDir+Readlink", func() { naiveOwners(b, allPIDs()) }},
	}
	var tm testutil.Timings
	for round := 0; b.Loop(); round++ {
		for i := range contenders {
			c := contenders[(round+i)%len(contenders)] // rotate who goes first
			start := time.Now()
			c.run()
			tm.Add(c.name, time.Since(start))
		}
	}
	if _, err := attachProcesses(socks, 2); err != nil || len(socks[0].Processes) != 1 {
		b.Fatalf("scan found no owner for the first holder socket: %v", err)
	}
	b.ReportMetric(float64(tm.Median("AttachProcesses"))/1e6, "attach-ms")
	b.ReportMetric(tm.Ratio("AttachProcesses", "AttachProcesses/1-goroutine"), "ratio-vs-1goroutine")
	b.ReportMetric(tm.Ratio("AttachProcesses", "naive ReadDir+Readlink"), "ratio-vs-naive")
	b.Logf("%d socket fds in %d holders, medians alternating in one run:\n%s", len(socks), len(pids), tm.Table())
}

func TestParseSocketLink(t *testing.T) {
	for _, tc := range []struct {
		link  string
		inode uint64
		ok    bool
	}{
		{"socket:[12345]", 12345, true},
		{"socket:[18446744073709551615]", math.MaxUint64, true},
		{"socket:[18446744073709551616]", 0, false}, // overflows
		{"socket:[-1]", 0, false},
		{"socket:[]", 0, false},
		{"socket:[12a]", 0, false},
		{"socket:[123", 0, false},
		{"pipe:[12345]", 0, false},
		{"anon_inode:[eventpoll]", 0, false},
		{"/dev/null", 0, false},
		{"", 0, false},
	} {
		inode, ok := parseSocketLink([]byte(tc.link))
		if inode != tc.inode || ok != tc.ok {
			t.Errorf("parseSocketLink(%q) = %d, %v; want %d, %v", tc.link, inode, ok, tc.inode, tc.ok)
		}
	}
}

// TestDirentNames feeds a getdents64 buffer laid out as the kernel does:
// 8-byte aligned records, NUL-terminated names.
func TestDirentNames(t *testing.T) {
	var buf []byte
	want := []string{".", "..", "0", "19999"}
	for _, name := range want {
		reclen := (direntName + len(name) + 1 + 7) &^ 7
		rec := make([]byte, reclen)
		binary.NativeEndian.PutUint16(rec[direntReclen:], uint16(reclen))
		copy(rec[direntName:], name)
		buf = append(buf, rec...)
	}
	var got []string
	for name := range direntNames(buf) {
		got = append(got, string(name))
	}
	if !slices.Equal(got, want) {
		t.Errorf("names %q, want %q", got, want)
	}
}

// TestScanSkipsGoneProcesses covers a process that exits between the read
// of its fds and of its comm: its sockets are closed by then, so its refs
// must not come back, wherever they sit in the storage chunks.
func TestScanSkipsGoneProcesses(t *testing.T) {
	alive, exited := &procInfo{pid: 1, comm: "a"}, &procInfo{pid: 2, gone: true}
	s := &procScanner{}
	want := 0
	for i := range 3*refChunk + 7 {
		proc := alive
		if i%3 == 0 {
			proc = exited
		} else {
			want++
		}
		s.addRef(fdRef{key: uint64(i), fd: int32(i), proc: proc})
	}
	scan := &procScan{scanners: []*procScanner{s}}
	got := 0
	scan.each(func(key uint64, p Process) {
		got++
		if key%3 == 0 || p != (Process{PID: 1, Comm: "a", FD: int32(key)}) {
			t.Errorf("key %d came back as %+v", key, p)
		}
	})
	if got != want || scan.count() != want || scan.stats().Sockets != want {
		t.Errorf("each saw %d, count %d, stats %+v; want %d sockets", got, scan.count(), scan.stats(), want)
	}
}
