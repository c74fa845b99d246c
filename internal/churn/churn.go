// Package churn generates loopback TCP connection churn for benchmarks: a
// fixed number of connections, each one connect, one byte from the client,
// one byte back, then the client closes first and the server closes on EOF.
//
// That shape gives every connection the same ten state transitions, which a
// tracer benchmark can count on:
//
//	client: CLOSE→SYN_SENT, SYN_SENT→ESTABLISHED, ESTABLISHED→FIN_WAIT1,
//	        FIN_WAIT1→FIN_WAIT2, FIN_WAIT2→CLOSE (its TIME_WAIT is a separate sock)
//	server: LISTEN→SYN_RECV, SYN_RECV→ESTABLISHED, ESTABLISHED→CLOSE_WAIT,
//	        CLOSE_WAIT→LAST_ACK, LAST_ACK→CLOSE
//
// The sockets are driven with blocking system calls on both ends, no
// netpoller, so a connection costs eleven system calls (socket, setsockopt,
// connect, write, read, close; accept4, read, write, read, close) and little
// else: the generator spends over 95% of its time in the kernel, so its rate
// is what the kernel allows on this machine.
package churn

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Config says how much churn to make and how.
type Config struct {
	// Workers is how many client goroutines connect in parallel; the server
	// side runs as many accepting goroutines per listener. Zero means one per
	// CPU.
	Workers int
	// Listeners is how many loopback addresses (127.0.0.1 and up) listen on
	// the same port. The kernel keeps a client's port in TIME_WAIT for a
	// second before connect may reuse it, and one destination has only
	// ~28,000 ephemeral ports: at tens of thousands of connections per second
	// one address runs out, so connections are spread over several. Zero
	// means 4.
	Listeners int
	// Port is the port to listen on; zero picks a free one.
	Port uint16
	// Rate caps the connections per second over all workers, for runs that
	// must not outpace a slow observer; zero means as fast as possible.
	Rate float64
	// ReadTimeout bounds the client's wait for the reply byte, so a run can
	// never hang on a lost peer. Zero means 5 seconds.
	ReadTimeout time.Duration
	// RunTimeout bounds each Run, whatever its context: a run too slow to
	// finish is a broken benchmark, not one to wait for. Zero means a minute.
	RunTimeout time.Duration
}

// Result is what one Run did.
type Result struct {
	// Conns is how many connections completed the full exchange: the
	// client read the byte back, and the server then saw the client's EOF
	// and closed (Run waits for that).
	Conns int
	// Elapsed runs from the first connect to the last server-side close.
	Elapsed time.Duration
}

// Rate is the completed connections per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Conns) / r.Elapsed.Seconds()
}

// Generator owns the listeners and their accepting goroutines; Run makes
// connections to them. Listeners live as long as the Generator so that runs
// add no LISTEN transitions of their own.
type Generator struct {
	cfg       Config
	port      uint16
	addrs     []*unix.SockaddrInet4
	listeners []int
	servers   sync.WaitGroup
	served    atomic.Int64 // connections whose server side completed the exchange
	broken    atomic.Int64 // connections whose server side did not
	serveErr  atomic.Pointer[error]
	runMu     sync.Mutex // one Run at a time: counts are per run
	closeOnce sync.Once
}

// New binds and listens, and starts the server side. Close stops it.
func New(cfg Config) (*Generator, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.Listeners <= 0 {
		cfg.Listeners = 4
	}
	if cfg.Listeners > 254 {
		return nil, fmt.Errorf("churn: %d listeners: at most 254 loopback addresses", cfg.Listeners)
	}
	if cfg.Rate < 0 {
		return nil, fmt.Errorf("churn: rate %v: want zero (no cap) or more", cfg.Rate)
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 5 * time.Second
	}
	if cfg.RunTimeout <= 0 {
		cfg.RunTimeout = time.Minute
	}
	g := &Generator{cfg: cfg, port: cfg.Port}
	for i := range cfg.Listeners {
		addr := [4]byte{127, 0, 0, byte(1 + i)}
		fd, port, err := listen(addr, g.port)
		if err != nil {
			g.closeListeners()
			return nil, fmt.Errorf("churn: listening on %v: %w", netip.AddrPortFrom(netip.AddrFrom4(addr), g.port), err)
		}
		g.port = port
		g.listeners = append(g.listeners, fd)
		g.addrs = append(g.addrs, &unix.SockaddrInet4{Addr: addr, Port: int(port)})
	}
	for _, fd := range g.listeners {
		for range cfg.Workers {
			g.servers.Add(1)
			go g.serve(fd)
		}
	}
	return g, nil
}

// Port is the port every listener uses: a tracer can filter on it.
func (g *Generator) Port() uint16 { return g.port }

// Addrs are the listening addresses.
func (g *Generator) Addrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(g.addrs))
	for i, a := range g.addrs {
		out[i] = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), g.port)
	}
	return out
}

// Close shuts the listeners down, which wakes the accepting goroutines, and
// waits for them.
func (g *Generator) Close() error {
	g.closeOnce.Do(func() {
		for _, fd := range g.listeners {
			// shutdown, unlike close, wakes a thread blocked in accept.
			_ = unix.Shutdown(fd, unix.SHUT_RDWR)
		}
		g.servers.Wait()
		g.closeListeners()
	})
	return nil
}

func (g *Generator) closeListeners() {
	for _, fd := range g.listeners {
		unix.Close(fd)
	}
	g.listeners = nil
}

// Run makes exactly n connections, spread over the workers and listeners,
// and returns once the server side of every one has closed too, so all
// their transitions have happened. It stops early, with an error, when ctx
// ends, Config.RunTimeout passes or a connection fails.
func (g *Generator) Run(ctx context.Context, n int) (Result, error) {
	if n <= 0 {
		return Result{}, fmt.Errorf("churn: %d connections: need at least one", n)
	}
	g.runMu.Lock()
	defer g.runMu.Unlock()
	ctx, stop := context.WithTimeout(ctx, g.cfg.RunTimeout)
	defer stop()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	servedBefore, brokenBefore := g.served.Load(), g.broken.Load()
	var next, done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range g.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // blocking calls: keep the thread, skip hand-offs
			defer runtime.UnlockOSThread()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if !g.pace(ctx, start, i) {
					return
				}
				dst := g.addrs[(int(i)+w)%len(g.addrs)]
				if err := g.exchange(dst); err != nil {
					cancel(fmt.Errorf("churn: connection %d to %v: %w", i, netip.AddrFrom4(dst.Addr), err))
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	res := Result{Conns: int(done.Load())}
	if err := g.waitServed(ctx, servedBefore+int64(res.Conns), brokenBefore); err != nil {
		cancel(err)
	}
	res.Elapsed = time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// pace waits, under Config.Rate, until connection i is due, and says
// whether to go on.
func (g *Generator) pace(ctx context.Context, start time.Time, i int64) bool {
	if g.cfg.Rate > 0 {
		due := start.Add(time.Duration(float64(i) / g.cfg.Rate * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
	return ctx.Err() == nil
}

// waitServed waits for the server side to finish the connections the
// clients completed: the client returns from close before the server has
// read EOF and closed its end. Once every client has closed, no server
// read can block, so ReadTimeout is plenty.
func (g *Generator) waitServed(ctx context.Context, want, brokenBefore int64) error {
	deadline := time.Now().Add(g.cfg.ReadTimeout)
	pause := 50 * time.Microsecond
	for g.served.Load() < want {
		if p := g.serveErr.Load(); p != nil {
			return *p
		}
		if n := g.broken.Load() - brokenBefore; n > 0 {
			return fmt.Errorf("churn: %d connections broke off on the server side: %w", n, ErrShortExchange)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("churn: server side finished %d of %d connections: %w",
				g.served.Load(), want, cmp.Or(context.Cause(ctx), context.DeadlineExceeded))
		}
		time.Sleep(pause)
		pause = min(2*pause, 5*time.Millisecond)
	}
	return nil
}

// ErrShortExchange means a peer closed or sent the wrong byte mid-exchange.
var ErrShortExchange = errors.New("short exchange")
