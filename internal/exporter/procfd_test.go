package exporter

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Our own process, through the real /proc: the fd count moves with an
// open file, the limit is getrlimit's soft one.
func TestProcFDsSelf(t *testing.T) {
	read := ProcFDs("/proc")
	pid := uint32(os.Getpid())
	before, max, ok := read(pid)
	if !ok {
		t.Fatal("our own fds unreadable")
	}
	f, err := os.Open("/proc/self/limits")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	after, _, _ := read(pid)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if after != before+1 || max != lim.Cur {
		t.Errorf("fds %d then %d after an open, limit %d; want +1 and %d", before, after, max, lim.Cur)
	}
	if _, _, ok := read(1 << 30); ok {
		t.Error("a pid that does not exist read as known")
	}
	// the count is the listing's: a listing of our own fds holds the
	// descriptor it lists through, which a stat (6.2+) does not count
	names, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	want := len(names)
	if st, err := os.Stat("/proc/self/fd"); err == nil && st.Size() > 0 {
		want--
	}
	if now, _, _ := read(pid); now != uint64(want) {
		t.Errorf("fds %d, want %d (/proc/self/fd lists %d)", now, want, len(names))
	}
}

func TestSoftNoFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		limits string
		want   uint64
		ok     bool
	}{
		{"Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n", 1024, true},
		{"Max open files            unlimited            unlimited            files\n", 0, false},
		{"Max processes             1024                 1024                 processes\n", 0, false},
	} {
		path := filepath.Join(dir, "limits")
		if err := os.WriteFile(path, []byte(tc.limits), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, ok := softNoFile(path); got != tc.want || ok != tc.ok {
			t.Errorf("%q: %d %v, want %d %v", tc.limits, got, ok, tc.want, tc.ok)
		}
	}
}
