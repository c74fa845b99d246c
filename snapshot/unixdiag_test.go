package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

func TestUnixPath(t *testing.T) {
	tests := []struct {
		raw  string
		want string
	}{
		{"", ""},
		{"/run/x.sock", "/run/x.sock"},
		{"/run/x.sock\x00garbage", "/run/x.sock"},
		{"\x00abstract", "@abstract"},
		{"\x00with\x00nul", "@with\x00nul"}, // abstract names are raw bytes
	}
	for _, tt := range tests {
		if got := unixPath([]byte(tt.raw)); got != tt.want {
			t.Errorf("unixPath(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func unixSockaddr(path string) *unix.SockaddrUnix {
	return &unix.SockaddrUnix{Name: path} // x/sys turns a leading "@" into a NUL
}

func findUnix(t *testing.T, name string, fd int) Socket {
	t.Helper()
	ino := fdInode(t, fd)
	return waitForSocket(t, Options{Unix: true}, name, func(s *Socket) bool {
		return s.Protocol == Unix && s.Inode == ino
	})
}

func wantUnix(t *testing.T, name string, s Socket, typ UnixType, state tcpstate.State, path string, uid uint32) {
	t.Helper()
	if s.UnixType != typ || s.State != state || s.Path != path || s.Family != unix.AF_UNIX {
		t.Errorf("%s: type %d state %v path %q family %d, want %d %v %q AF_UNIX", name, s.UnixType, s.State, s.Path, s.Family, typ, state, path)
	}
	if s.UID != uid || s.Netns != selfNetns(t) {
		t.Errorf("%s: uid %d netns %d, want %d %d", name, s.UID, s.Netns, uid, selfNetns(t))
	}
}

// TestDumpUnix covers what ss -x shows: a stream listener on a path with two
// connections waiting in its queue, an abstract listener, a connected pair
// (each the other's peer), and a bound datagram socket.
func TestDumpUnix(t *testing.T) {
	testutil.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "ln.sock")
	ln := socketAs(t, 4244, unix.AF_UNIX, unix.SOCK_STREAM)
	if err := unix.Bind(ln, unixSockaddr(path)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 5); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c := newSock(t, unix.AF_UNIX, unix.SOCK_STREAM)
		if err := unix.Connect(c, unixSockaddr(path)); err != nil {
			t.Fatal(err)
		}
	}
	s := findUnix(t, "the path listener", ln)
	wantUnix(t, "path listener", s, unix.SOCK_STREAM, tcpstate.Listen, path, 4244)
	if s.RecvQ != 2 || s.SendQ != 5 {
		t.Errorf("path listener: Recv-Q %d Send-Q %d, want 2 queued over a backlog of 5", s.RecvQ, s.SendQ)
	}

	abstract := fmt.Sprintf("@socklife-test-%d", os.Getpid())
	aln := newSock(t, unix.AF_UNIX, unix.SOCK_SEQPACKET)
	if err := unix.Bind(aln, unixSockaddr(abstract)); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(aln, 1); err != nil {
		t.Fatal(err)
	}
	wantUnix(t, "abstract listener", findUnix(t, "the abstract listener", aln), unix.SOCK_SEQPACKET, tcpstate.Listen, abstract, 0)

	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(pair[0]); unix.Close(pair[1]) })
	if _, err := unix.Write(pair[0], []byte("12345")); err != nil {
		t.Fatal(err)
	}
	a, b := findUnix(t, "pair end a", pair[0]), findUnix(t, "pair end b", pair[1])
	wantUnix(t, "pair end a", a, unix.SOCK_STREAM, tcpstate.Established, "", 0)
	if a.PeerInode != b.Inode || b.PeerInode != a.Inode {
		t.Errorf("pair: a %d peer %d, b %d peer %d, want each the other's peer", a.Inode, a.PeerInode, b.Inode, b.PeerInode)
	}
	if b.RecvQ != 5 {
		t.Errorf("pair end b: Recv-Q %d, want the 5 unread bytes", b.RecvQ)
	}

	dgram := newSock(t, unix.AF_UNIX, unix.SOCK_DGRAM)
	dpath := filepath.Join(t.TempDir(), "dgram.sock")
	if err := unix.Bind(dgram, unixSockaddr(dpath)); err != nil {
		t.Fatal(err)
	}
	wantUnix(t, "dgram", findUnix(t, "the datagram socket", dgram), unix.SOCK_DGRAM, tcpstate.Close, dpath, 0)
}
