package snapshot

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/ssfilter"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// rawCount runs opts' TCP IPv4 dump and counts the sockets in the kernel's
// answer, before any test in user space.
func rawCount(t *testing.T, opts Options) int {
	t.Helper()
	opts.compileSSFilter()
	c, err := openDiag()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := query{TCP, unix.AF_INET}
	n := 0
	err = c.dump(context.Background(), q.request(opts), q.module(), func([]byte) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDumpSSFilterInKernel checks that the filter's bytecode goes with the
// request, so the kernel sends only what matches, and that what bytecode
// cannot say (dev) is still filtered, in user space.
func TestDumpSSFilterInKernel(t *testing.T) {
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	for range 3 {
		testutil.Pair(t, ln)
	}
	other := testutil.PlainListener(t)
	testutil.Pair(t, other)
	port := ln.Addr().(*net.TCPAddr).Port
	otherPort := other.Addr().(*net.TCPAddr).Port
	all := rawCount(t, Options{TCP: true, States: tcpstate.All})

	for _, tc := range []struct {
		expr     string
		inKernel bool // the kernel filters: its answer is what matches
		want     int  // sockets Dump keeps
	}{
		{fmt.Sprintf("sport = :%d", port), true, 4}, // the listener and 3 accepted
		{fmt.Sprintf("dport = :%d", port), true, 3},
		{fmt.Sprintf("( sport = :%d or dport = :%d ) and not src 127.0.0.2", port, port), true, 7},
		{fmt.Sprintf("sport = :%d or sport = :%d", port, otherPort), true, 6},
		{fmt.Sprintf("not dev lo and sport = :%d", port), false, 4},
	} {
		f, err := ssfilter.ParseString(tc.expr, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.expr, err)
		}
		opts := Options{TCP: true, IPv4: true, States: tcpstate.All, SSFilter: f}
		raw := rawCount(t, opts)
		switch {
		case tc.inKernel && raw != tc.want:
			t.Errorf("%q: the kernel answered %d sockets, want the %d that match", tc.expr, raw, tc.want)
		case !tc.inKernel && raw < all:
			t.Errorf("%q: no bytecode, yet the kernel answered %d of %d sockets", tc.expr, raw, all)
		}
		res, err := Dump(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Sockets) != tc.want {
			t.Errorf("%q: Dump kept %d sockets, want %d: %+v", tc.expr, len(res.Sockets), tc.want, res.Sockets)
		}
	}
}

// TestDumpSSFilterFamilyAndUnix: a unix: host selects Unix sockets by
// path (ss's fnmatch patterns) and leaves TCP and UDP out, and an inet:
// host leaves out IPv6 and Unix.
func TestDumpSSFilterFamilyAndUnix(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "sslife.sock")
	uln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer uln.Close()
	ln := testutil.PlainListener(t)
	port := ln.Addr().(*net.TCPAddr).Port

	for _, tc := range []struct {
		expr string
		want []string // what Dump lists, as Path or Local
	}{
		{"src unix:" + dir + "/*", []string{path}},
		{"src unix:" + path + " or sport = :" + fmt.Sprint(port), []string{path}},
		{fmt.Sprintf("src inet:127.0.0.1:%d", port), []string{fmt.Sprintf("127.0.0.1:%d", port)}},
		{fmt.Sprintf("src inet6:[::]:%d", port), nil},
	} {
		f, err := ssfilter.ParseString(tc.expr, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.expr, err)
		}
		res, err := Dump(context.Background(), Options{States: tcpstate.Listening, SSFilter: f})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range res.Sockets {
			if s.Protocol == Unix {
				got = append(got, s.Path)
			} else {
				got = append(got, s.Local.String())
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: Dump listed %q, want %q", tc.expr, got, tc.want)
		}
	}
}
