package tracer

import (
	"net"
	"testing"

	"github.com/socklife/socklife/internal/testutil"
)

// The kernel reuses a closed socket's address for the next one, and the
// state program keeps its per-socket entry (zeroed at ->CLOSE) for it: the
// new socket must start as unknown as a never-seen one, with nothing
// inherited from the old one (no time in state, no owner from before).
func TestSockAddressReuse(t *testing.T) {
	stateHooks(t, func(t *testing.T, opts Options) {
		col := startTracer(t, opts)
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		const conns = 40
		testutil.Churn(t, ln, conns)
		ln.Close()
		// per connection: the client's 5 transitions, the child's 5 and
		// its accept; and the listener's 2
		events := col.waitEvents(t, port, conns*11+2)
		if reused := checkLives(t, events); reused == 0 {
			t.Fatalf("no socket address reused over %d connections: nothing was tested", conns)
		}
		checkNoLoss(t, col.tr)
	})
}

// checkLives splits each socket address's events into lives (a life ends at
// ->CLOSE), checks that every life starts unknown, and returns how many
// lives began at an address an earlier life had used.
func checkLives(t *testing.T, events []Event) (reused int) {
	t.Helper()
	type life struct{ n, lives int }
	socks := map[uint64]*life{}
	for _, ev := range events {
		l := socks[ev.Sock]
		if l == nil {
			l = &life{}
			socks[ev.Sock] = l
		}
		if l.n == 0 && ev.Kind == StateChange {
			if l.lives > 0 {
				reused++
			}
			if ev.InStateKnown {
				t.Errorf("life %d of %#x starts with %s, in state %v: want unknown", l.lives+1, ev.Sock, transition(ev), ev.InState)
			}
			if transition(ev) == "LISTEN>SYN_RECV" && ev.OwnerSource != OwnerListener {
				t.Errorf("life %d of %#x: new child's owner from %s, want the listener", l.lives+1, ev.Sock, ev.OwnerSource)
			}
		}
		l.n++
		if ev.Kind == StateChange && ev.New.KernelName() == "CLOSE" {
			l.n = 0
			l.lives++
		}
	}
	return reused
}
