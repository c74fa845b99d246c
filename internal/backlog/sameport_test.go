package backlog

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/testutil"
)

// listenOn listens on addr:port (0: any port) with backlog 8, and accepts nothing.
func listenOn(t *testing.T, addr [4]byte, port uint16) (int, uint16) {
	t.Helper()
	return testutil.RawListener(t, addr, port, 8)
}

// Two listeners on one port, on different addresses: each child is
// counted on its own listener's queue, not on whichever listened last.
func TestSamePortTwoAddresses(t *testing.T) {
	m := startMonitor(t, Config{Interval: 100 * time.Millisecond, Stall: time.Minute})
	_, port := listenOn(t, [4]byte{127, 0, 0, 2}, 0)
	listenOn(t, [4]byte{127, 0, 0, 3}, port)
	for _, c := range []struct {
		addr [4]byte
		n    int
	}{{[4]byte{127, 0, 0, 2}, 3}, {[4]byte{127, 0, 0, 3}, 1}} {
		for range c.n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(fd) })
			if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: c.addr, Port: int(port)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string]uint64{"127.0.0.2": 3, "127.0.0.3": 1}
	got := map[string]ListenerReport{}
	testutil.WaitFor(t, 5*time.Second, "both listeners' enqueues reported", func() bool {
		enq := map[string]uint64{}
		for _, r := range m.listenerReports(port) {
			a := r.Local.Addr().String()
			enq[a] += r.Enqueues
			got[a] = r.ListenerReport
		}
		return enq["127.0.0.2"] == want["127.0.0.2"] && enq["127.0.0.3"] == want["127.0.0.3"]
	})
	for addr, n := range want {
		if l := got[addr]; uint64(l.Queue) != n || uint64(l.Peak) != n {
			t.Errorf("%s: queue %d peak %d, want %d", addr, l.Queue, l.Peak, n)
		}
	}
	m.stop(t)
}
