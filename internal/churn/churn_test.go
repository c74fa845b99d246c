package churn_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/churn"
	"github.com/socklife/socklife/internal/testutil"
)

// Loopback sockets need no privilege, so these tests run as any user.

func newGenerator(t testing.TB, cfg churn.Config) *churn.Generator {
	t.Helper()
	g, err := churn.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestRunMakesExactlyTheConnectionsAsked(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  churn.Config
		n    int
	}{
		{"one", churn.Config{Workers: 1, Listeners: 1}, 1},
		{"fewer than workers", churn.Config{Workers: 4, Listeners: 2}, 3},
		{"many", churn.Config{}, 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGenerator(t, tc.cfg)
			// a bound on a hang, not a speed test: generous, and stretched
			// under emulation
			ctx, cancel := context.WithTimeout(context.Background(), testutil.Scaled(2*time.Minute))
			defer cancel()
			res, err := g.Run(ctx, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if res.Conns != tc.n {
				t.Errorf("Run(%d) completed %d connections", tc.n, res.Conns)
			}
			if res.Elapsed <= 0 || res.Rate() <= 0 {
				t.Errorf("Elapsed %v, Rate %v: want both positive", res.Elapsed, res.Rate())
			}
		})
	}
}

func TestRunsAreRepeatableOnOneGenerator(t *testing.T) {
	g := newGenerator(t, churn.Config{Workers: 2, Listeners: 2})
	for i := range 3 {
		res, err := g.Run(context.Background(), 200)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if res.Conns != 200 {
			t.Fatalf("run %d completed %d connections, want 200", i, res.Conns)
		}
	}
}

func TestListenersAreLoopbackOnOnePort(t *testing.T) {
	g := newGenerator(t, churn.Config{Listeners: 3})
	addrs := g.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("%d listeners, want 3", len(addrs))
	}
	for i, a := range addrs {
		if !a.Addr().IsLoopback() || a.Port() != g.Port() || g.Port() == 0 {
			t.Errorf("listener %d is %v: want a loopback address on port %d", i, a, g.Port())
		}
		if want := fmt.Sprintf("127.0.0.%d", i+1); a.Addr().String() != want {
			t.Errorf("listener %d on %v, want %s", i, a.Addr(), want)
		}
	}
}

func TestRunStopsInTime(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     churn.Config
		timeout time.Duration // of Run's context; 0 for none
	}{
		{"context deadline", churn.Config{Workers: 2}, 50 * time.Millisecond},
		{"RunTimeout", churn.Config{Workers: 2, RunTimeout: 50 * time.Millisecond}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGenerator(t, tc.cfg)
			// The deadline starts with Run, not with the generator's set-up,
			// which can take longer than 50 ms in an emulated kernel.
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			start := time.Now()
			// Far more than 50 ms of work at any rate this machine reaches.
			res, err := g.Run(ctx, 100_000_000)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Run past its deadline returned %v, want DeadlineExceeded", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Run took %v to notice its deadline", took)
			}
			if res.Conns <= 0 || res.Conns >= 100_000_000 {
				t.Errorf("Run stopped after %d connections: want some, not all", res.Conns)
			}
		})
	}
}

func TestRateCapsTheRun(t *testing.T) {
	g := newGenerator(t, churn.Config{Workers: 2, Rate: 1000})
	res, err := g.Run(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	// The 100th connection is due 99 ms after the first at 1000/s.
	if res.Conns != 100 || res.Elapsed < 99*time.Millisecond {
		t.Errorf("100 connections at 1000/s: %d in %v, want 100 in at least 99 ms", res.Conns, res.Elapsed)
	}
}

func TestBadInput(t *testing.T) {
	g := newGenerator(t, churn.Config{Workers: 1, Listeners: 1})
	for _, n := range []int{0, -1} {
		if _, err := g.Run(context.Background(), n); err == nil {
			t.Errorf("Run(%d) succeeded, want an error", n)
		}
	}
	for _, cfg := range []churn.Config{{Listeners: 255}, {Rate: -1}} {
		if g, err := churn.New(cfg); err == nil {
			g.Close()
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		}
	}
	// The port is taken by g: a second generator on it must fail to bind.
	if _, err := churn.New(churn.Config{Listeners: 1, Port: g.Port()}); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("New on a port in use returned %v, want EADDRINUSE", err)
	}
}

// BenchmarkChurn measures the generator alone: the ceiling for the tracer
// benchmark's "off" runs.
func BenchmarkChurn(b *testing.B) {
	g := newGenerator(b, churn.Config{})
	var conns int
	var elapsed time.Duration
	for b.Loop() {
		res, err := g.Run(context.Background(), 20_000)
		if err != nil {
			b.Fatal(err)
		}
		conns += res.Conns
		elapsed += res.Elapsed
	}
	b.ReportMetric(float64(conns)/elapsed.Seconds(), "conns/s")
}
