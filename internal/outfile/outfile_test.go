package outfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/testutil"
)

// Root writing in a directory others can write: what a planted path
// leads to is refused and left exactly as it was (content, mode, owner).
func TestOpenRefuses(t *testing.T) {
	testutil.RequireRoot(t) // a file of another user's
	dir := t.TempDir()
	link, target := testutil.PlantLink(t, dir, "keep\n", -1)
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "theirs")
	if err := os.WriteFile(theirs, []byte("theirs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	hardlink := filepath.Join(dir, "hardlink")
	if err := os.Link(target, hardlink); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, look, why string }{
		{hardlink, target, "a file with 2 hard links"},
		{link, target, "a symbolic link, not followed"},
		{"/dev/null", "/dev/null", "a character device, not a regular file"},
		{fifo, fifo, "a FIFO, not a regular file"},
		{dir, dir, "a directory, not a regular file"},
		{theirs, theirs, "a file of uid 65534, not of uid 0"},
	} {
		before := testutil.FileFacts(t, c.look)
		f, err := Open(c.path, 0o600, false)
		if err == nil {
			f.Close()
		}
		if !errors.Is(err, ErrRefused) || !strings.HasPrefix(err.Error(), c.why) {
			t.Errorf("Open(%s): %v; want refused: %s", c.path, err, c.why)
		}
		if err := Check(c.path); !errors.Is(err, ErrRefused) {
			t.Errorf("Check(%s): %v; want refused", c.path, err)
		}
		if after := testutil.FileFacts(t, c.look); after != before {
			t.Errorf("Open(%s) changed %s: %s, was %s", c.path, c.look, after, before)
		}
	}
}

// A new file is created private whatever the umask; an existing file of
// ours is opened as it is, neither truncated nor chmodded; with overwrite
// a link is followed and its target left its mode.
func TestOpenCreatesAndKeeps(t *testing.T) {
	dir := t.TempDir()
	old := unix.Umask(0)
	defer unix.Umask(old)
	fresh := filepath.Join(dir, "fresh")
	f, err := Open(fresh, 0o600, false)
	if err != nil || !f.Created || !f.Regular {
		t.Fatalf("Open(new): %+v, %v", f, err)
	}
	f.Close()
	if st, _ := os.Stat(fresh); st.Mode().Perm() != 0o600 {
		t.Errorf("new file mode %v, want 0600", st.Mode().Perm())
	}
	mine := filepath.Join(dir, "mine")
	if err := os.WriteFile(mine, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := testutil.FileFacts(t, mine)
	f, err = Open(mine, 0o600, false)
	if err != nil || f.Created || !f.Regular {
		t.Fatalf("Open(existing): %+v, %v", f, err)
	}
	f.Close()
	if after := testutil.FileFacts(t, mine); after != before {
		t.Errorf("opening changed the file: %s, was %s", after, before)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(mine, link); err != nil {
		t.Fatal(err)
	}
	f, err = Open(link, 0o600, true)
	if err != nil {
		t.Fatalf("Open(link, overwrite): %v", err)
	}
	f.Close()
	if after := testutil.FileFacts(t, mine); after != before {
		t.Errorf("overwrite through a link changed the target: %s, was %s", after, before)
	}
}
