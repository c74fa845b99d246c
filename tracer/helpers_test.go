package tracer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// The kernel-matrix runner sets these; here they default to what this kernel allows.
const (
	envExpectAccept = "SOCKLIFE_TEST_EXPECT_ACCEPT_HOOK" // fexit, kretprobe or tracepoint
	envDisable      = "SOCKLIFE_TEST_DISABLE_HOOKS"      // comma list, passed to Options.DisableHooks
	envUpdate       = "SOCKLIFE_UPDATE_TESTDATA"         // 1: rewrite testdata/*.hex from live records
)

func envDisabledHooks() []string {
	var out []string
	for _, h := range strings.Split(os.Getenv(envDisable), ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// collector keeps every event a tracer reads, for assertions after the fact.
type collector struct {
	tr     *Tracer
	mu     sync.Mutex
	events []Event
	raw    [][]byte
	// latency is how long each event took from the kernel to the reader.
	latency []time.Duration
}

// startTracer starts a tracer with opts plus the environment's disabled
// hooks, and a goroutine reading it until the test ends.
func startTracer(t *testing.T, opts Options) *collector {
	t.Helper()
	testutil.RequireRoot(t)
	opts.DisableHooks = append(opts.DisableHooks, envDisabledHooks()...)
	tr, err := New(opts)
	if err != nil {
		t.Fatalf("starting the tracer: %v", err)
	}
	c := &collector{tr: tr}
	if os.Getenv(envUpdate) == "1" {
		tr.tap = func(b []byte) {
			c.mu.Lock()
			c.raw = append(c.raw, slices.Clone(b))
			c.mu.Unlock()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tr.Read(ctx, func(ev *Event) error {
			c.mu.Lock()
			c.events = append(c.events, *ev)
			c.latency = append(c.latency, time.Since(ev.Time))
			c.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reading: %v", err)
		}
		tr.Close()
	})
	return c
}

// snapshot returns the events so far, for sockets with port on either side.
func (c *collector) snapshot(port uint16) []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Event
	for _, ev := range c.events {
		if ev.Local.Port() == port || ev.Remote.Port() == port {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvents waits until n events touching port have arrived.
func (c *collector) waitEvents(t *testing.T, port uint16, n int) []Event {
	t.Helper()
	var got []Event
	testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("%d events on port %d", n, port), func() bool {
		got = c.snapshot(port)
		return len(got) >= n
	})
	return got
}

// saveRaw writes the raw records to testdata/name.hex when envUpdate is set.
func (c *collector) saveRaw(t *testing.T, name string) {
	if os.Getenv(envUpdate) != "1" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, r := range c.raw {
		fmt.Fprintf(&b, "%x\n", r)
	}
	if err := os.WriteFile(filepath.Join("testdata", name+".hex"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// transition is one expected state change, as "OLD>NEW" with kernel names.
func transition(ev Event) string {
	if ev.Kind == Accept {
		return "accept"
	}
	return ev.Old.KernelName() + ">" + ev.New.KernelName()
}

// bySock groups events per socket, in arrival order, keyed by the first
// event's transition (every socket of a test starts differently).
func bySock(events []Event) map[string][]Event {
	first := map[uint64]string{}
	out := map[string][]Event{}
	for _, ev := range events {
		if _, ok := first[ev.Sock]; !ok {
			first[ev.Sock] = transition(ev)
		}
		out[first[ev.Sock]] = append(out[first[ev.Sock]], ev)
	}
	return out
}

func transitions(events []Event) string {
	s := make([]string, len(events))
	for i, ev := range events {
		s[i] = transition(ev)
	}
	return strings.Join(s, " ")
}

// checkSocket asserts a socket's exact sequence and that every event names
// this process as the owner, softirq ones included.
func checkSocket(t *testing.T, what string, events []Event, want string) {
	t.Helper()
	if got := transitions(events); got != want {
		t.Errorf("%s: transitions\n got %s\nwant %s", what, got, want)
	}
	pid := uint32(os.Getpid())
	for _, ev := range events {
		if ev.Owner.PID != pid || ev.OwnerSource == OwnerUnknown {
			t.Errorf("%s: %s: owner %d (%s), want this process %d", what, transition(ev), ev.Owner.PID, ev.OwnerSource, pid)
		}
	}
	// The tracer saw each socket enter every state after its first.
	for i, ev := range events {
		if ev.Kind == StateChange && ev.InStateKnown != (i > 0) {
			t.Errorf("%s: %s: InStateKnown %v", what, transition(ev), ev.InStateKnown)
		}
		if ev.Kind == StateChange && ev.HasClose != (ev.New == tcpstate.Close) {
			t.Errorf("%s: %s: HasClose %v", what, transition(ev), ev.HasClose)
		}
	}
}

func expectedAcceptHook() string {
	if h := os.Getenv(envExpectAccept); h != "" {
		return h
	}
	return "tracepoint" // this kernel: no kprobes, fexit refused
}

// checkHooks asserts the accept hook the environment expects.
func checkHooks(t *testing.T, tr *Tracer) {
	t.Helper()
	for _, h := range tr.Hooks() {
		if h.Feature == FeatureAccept {
			t.Logf("accept hook: %s", h.Hook) // the kernel-matrix runner checks this line
		}
		if h.Feature == FeatureAccept && h.Hook.String() != expectedAcceptHook() {
			t.Errorf("accept hook %s, want %s", h, expectedAcceptHook())
		}
	}
}

func checkNoLoss(t *testing.T, tr *Tracer) {
	t.Helper()
	if n := tr.Lost(); n != 0 {
		t.Errorf("Lost() = %d, want 0", n)
	}
}
