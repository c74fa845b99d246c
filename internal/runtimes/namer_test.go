package runtimes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
)

// silentRuntime is a socket that accepts connections and never answers,
// as a hung runtime does.
type silentRuntime struct {
	path     string
	mu       sync.Mutex
	accepted int
}

func startSilentRuntime(tb testing.TB) *silentRuntime {
	tb.Helper()
	s := &silentRuntime{path: filepath.Join(tb.TempDir(), "hung.sock")}
	ln, err := net.Listen("unix", s.path)
	if err != nil {
		tb.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted++
			conns = append(conns, c)
			s.mu.Unlock()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return s
}

func (s *silentRuntime) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// fakeClock lets a test move past DownFor without waiting for it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%064x", i+1)
	}
	return out
}

func attempts(n *Namer, runtime string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.backendFor(runtime).attempts
}

func pending(n *Namer) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := 0
	for _, e := range n.entries {
		if e.pending {
			p++
		}
	}
	return p
}

// A runtime that answers nothing costs one timeout, then rests for
// DownFor: ids looked up meanwhile are not asked about, and after it the
// runtime is asked again.
func TestSilentRuntimeCostsOneTimeoutThenRests(t *testing.T) {
	s := startSilentRuntime(t)
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	n := newNamer(t, Options{Endpoint: "unix://" + s.path, Timeout: 100 * time.Millisecond, DownFor: time.Minute})
	n.now = clock.Now
	all := ids(100)

	if names, ok := n.Lookup(Containerd, all[0]); ok {
		t.Fatalf("named %+v by a runtime that never answers", names)
	}
	// the fetch ends at its timeout
	if err := n.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	isDown, err := down(n, Containerd)
	if !isDown || err == nil {
		t.Fatalf("after a timeout: down %v, error %v; want down with an error", isDown, err)
	}
	// one fetch, which asked both protocols (the endpoint's is unknown)
	if got := attempts(n, Containerd); got != 1 {
		t.Fatalf("%d fetches, want 1", got)
	}
	if c := s.connections(); c < 1 || c > 2 {
		t.Errorf("%d connections for one fetch, want one per protocol at most", c)
	}

	for _, id := range all {
		if names, ok := n.Lookup(Docker, id); ok {
			t.Fatalf("named %+v", names)
		}
	}
	if got, p := attempts(n, Containerd), pending(n); got != 1 || p != 0 {
		t.Fatalf("while the runtime rests: %d fetches (want 1), %d ids queued (want 0)", got, p)
	}

	clock.advance(time.Minute)
	n.Lookup(Containerd, all[1])
	waitSettled(t, n, all[1])
	if got := attempts(n, Containerd); got != 2 {
		t.Errorf("after DownFor: %d fetches, want 2 (the runtime asked again)", got)
	}
}

// Lookup returns at once while a fetch hangs for as long as the runtime
// does (here an hour), queues no second fetch of the same id, and Close
// ends the hung call.
func TestLookupNeverWaitsForAHungRuntime(t *testing.T) {
	s := startSilentRuntime(t)
	n, err := New(Options{Endpoint: s.path, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id := ids(1)[0]
	returned := make(chan struct{})
	go func() {
		for range 1000 {
			n.Lookup(Containerd, id)
		}
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(30 * time.Second):
		t.Fatal("Lookup waited for a runtime that does not answer")
	}
	testutil.WaitFor(t, 10*time.Second, "the fetch to reach the runtime", func() bool { return s.connections() >= 1 })
	// the worker holds the id in its hung fetch: nothing more is queued
	n.mu.Lock()
	queued := len(n.backendFor(Containerd).queue)
	n.mu.Unlock()
	if got := attempts(n, Containerd); got != 1 || queued != 0 {
		t.Errorf("%d fetches for one id (want 1), %d more queued (want 0)", got, queued)
	}
	if names, ok := n.Lookup(Containerd, id); ok {
		t.Errorf("named %+v", names)
	}
	// a one-shot command waits no longer than it chooses to
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := n.Settle(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Settle during a hung fetch: %v, want its context's deadline", err)
	}
	closed := make(chan struct{})
	go func() { n.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited for the hung call")
	}
	if err := n.Settle(context.Background()); err != nil {
		t.Errorf("Settle after Close: %v", err)
	}
}

// No socket at all: the runtime is down at once, for the reason that the
// socket is absent, and Probe says so.
func TestAbsentRuntime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.sock")
	n := newNamer(t, Options{Endpoint: path})
	id := ids(1)[0]
	n.Lookup(CRIO, id)
	waitSettled(t, n, id)
	if isDown, err := down(n, CRIO); !isDown || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("down %v, error %v; want down with ErrNotExist", isDown, err)
	}
	for _, id := range ids(10) {
		n.Lookup(CRIO, id)
	}
	if got, p := attempts(n, CRIO), pending(n); got != 1 || p != 0 {
		t.Errorf("%d fetches (want 1), %d queued (want 0)", got, p)
	}
	st := n.Probe(context.Background())
	if len(st) != 1 || st[0].Endpoint != path || st[0].Protocol != "" || !errors.Is(st[0].Err, fs.ErrNotExist) {
		t.Errorf("Probe: %+v", st)
	}
}

func TestLookupWithoutARuntimeToAsk(t *testing.T) {
	n := newNamer(t, Options{})
	for _, tc := range []struct{ runtime, id string }{
		{"", ids(1)[0]},
		{"lxc", ids(1)[0]},
		{Containerd, ""},
	} {
		if _, ok := n.Lookup(tc.runtime, tc.id); ok {
			t.Errorf("Lookup(%q, %q) named it", tc.runtime, tc.id)
		}
	}
	if len(n.entries) != 0 {
		t.Errorf("cached %d ids no runtime can name", len(n.entries))
	}
}

// The cache holds MaxEntries ids; the one looked up least recently goes.
func TestCacheEvictsLeastRecentlyLookedUp(t *testing.T) {
	n := newNamer(t, Options{Endpoint: filepath.Join(t.TempDir(), "absent.sock"), MaxEntries: 3})
	a, b, c, d := "a", "b", "c", "d"
	for _, id := range []string{a, b, c, a, d} {
		n.Lookup(Docker, id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var got []string
	for e := n.lru.Front(); e != nil; e = e.Next() {
		got = append(got, e.Value.(*entry).id)
	}
	if fmt.Sprint(got) != fmt.Sprint([]string{d, a, c}) || len(n.entries) != 3 {
		t.Errorf("cache holds %v (%d entries), want [d a c]", got, len(n.entries))
	}
}

// cached puts names in the cache as a fetch would.
func cached(n *Namer, id string, names Names) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.insert(id)
	e.names, e.known = names, true
}

// The event path looks up every event's container: a hit must not
// allocate.
func TestCachedLookupAllocatesNothing(t *testing.T) {
	n := newNamer(t, Options{})
	id := ids(1)[0]
	cached(n, id, Names{Container: "web", PodName: "web-0", PodNamespace: "shop", PodUID: "6f1c"})
	if allocs := testing.AllocsPerRun(1000, func() { n.Lookup(Containerd, id) }); allocs != 0 {
		t.Errorf("a cached Lookup allocates %v times", allocs)
	}
}

func BenchmarkLookupCached(b *testing.B) {
	n := newNamer(b, Options{})
	id := ids(1)[0]
	cached(n, id, Names{Container: "web", PodName: "web-0", PodNamespace: "shop", PodUID: "6f1c"})
	b.ReportAllocs()
	for b.Loop() {
		n.Lookup(Containerd, id)
	}
}
