package live

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// synthetic is the i-th of many distinct connections: 10.x.y.z:port to 10.0.0.1:443.
func synthetic(i int) (local, remote netip.AddrPort) {
	a := netip.AddrFrom4([4]byte{10, byte(i >> 24), byte(i >> 16), byte(i >> 8)})
	return netip.AddrPortFrom(a, uint16(1024+i&0xff)), netip.MustParseAddrPort("10.0.0.1:443")
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkTableMemory reports the heap a tracked socket costs ("B/socket"),
// for sockets the events created (indexed by sock) and for sockets only a
// snapshot has seen (indexed by tuple).
func BenchmarkTableMemory(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("events/%d", n), func(b *testing.B) {
			var per float64
			for range b.N {
				before := heapInUse()
				t := NewTable(nil)
				ev := tracer.Event{Kind: tracer.StateChange, Netns: 1, Family: unix.AF_INET, Time: t0,
					OwnerSource: tracer.OwnerTask, Owner: tracer.Task{PID: 7, Comm: "app"}}
				for i := range n {
					ev.Sock = uint64(i+1) << 6
					ev.Local, ev.Remote = synthetic(i)
					ev.Old, ev.New = cls, syns
					t.Apply(&ev)
					ev.Old, ev.New = syns, est
					t.Apply(&ev)
				}
				per = float64(heapInUse()-before) / float64(n)
				runtime.KeepAlive(t)
			}
			b.ReportMetric(per, "B/socket")
		})
		b.Run(fmt.Sprintf("snapshot/%d", n), func(b *testing.B) {
			var per float64
			for range b.N {
				// Measured before the snapshot exists and after it is
				// dropped: only the table remains.
				before := heapInUse()
				socks := make([]snapshot.Socket, n)
				for i := range socks {
					l, r := synthetic(i)
					socks[i] = snapshot.Socket{Protocol: snapshot.TCP, Family: unix.AF_INET, State: est, Netns: 1, Local: l, Remote: r, Inode: uint64(i + 1)}
				}
				t := NewTable(nil)
				t.Load(socks, t0)
				socks = nil
				per = float64(heapInUse()-before) / float64(n)
				runtime.KeepAlive(t)
			}
			b.ReportMetric(per, "B/socket")
		})
	}
}

// lifeEvents are the five state changes of one client connection's life.
func lifeEvents(sock uint64, i int) []tracer.Event {
	l, r := synthetic(i)
	var evs []tracer.Event
	for j, tr := range [][2]tcpstate.State{{cls, syns}, {syns, est}, {est, fw1}, {fw1, fw2}, {fw2, cls}} {
		ev := tracer.Event{Kind: tracer.StateChange, Sock: sock, Netns: 1, Family: unix.AF_INET,
			Time: t0.Add(time.Duration(j) * time.Microsecond), Local: l, Remote: r, Old: tr[0], New: tr[1],
			OwnerSource: tracer.OwnerTask, Owner: tracer.Task{PID: 7, Comm: "app"}, HasClose: tr[1] == cls}
		if j == 0 {
			ev.Local = netip.AddrPortFrom(l.Addr(), 0)
		}
		evs = append(evs, ev)
	}
	return evs
}

// churnEvents interleaves the lives of `live` concurrent connections, as
// a busy host's ring buffer does.
func churnEvents(live int) []tracer.Event {
	per := make([][]tracer.Event, live)
	for i := range per {
		per[i] = lifeEvents(uint64(i+1)<<6, 200_000+i)
	}
	var out []tracer.Event
	for step := range 5 {
		for i := range per {
			out = append(out, per[i][step])
		}
	}
	return out
}

// BenchmarkApply is the cost of one event on a table already tracking
// 100,000 sockets, over whole connection lives (create, three changes,
// close and delete), with onClose building the Conn a record needs. The
// 100,000 came from events (indexed by sock) or from a snapshot (indexed by
// tuple, so each new connection's tuple is checked against them).
func BenchmarkApply(b *testing.B) {
	for _, from := range []string{"events", "snapshot"} {
		b.Run(from, func(b *testing.B) {
			t := NewTable(func(*Conn) error { return nil })
			base := tracer.Event{Kind: tracer.StateChange, Netns: 1, Family: unix.AF_INET, Time: t0, Old: syns, New: est}
			var socks []snapshot.Socket
			for i := range 100_000 {
				base.Sock = uint64(i+1)<<6 | 1<<40
				base.Local, base.Remote = synthetic(i)
				if from == "events" {
					t.Apply(&base)
				} else {
					socks = append(socks, snapshot.Socket{Protocol: snapshot.TCP, State: est, Netns: 1, Local: base.Local, Remote: base.Remote})
				}
			}
			t.Load(socks, t0)
			evs := churnEvents(1024)
			for i := range evs {
				t.Apply(&evs[i]) // warm the maps and the free list
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := t.Apply(&evs[i%len(evs)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkApplyPeerMap is the floor BenchmarkApply is measured against:
// the same events kept as a bare map from sock to state and entry time.
func BenchmarkApplyPeerMap(b *testing.B) {
	type bare struct {
		state tcpstate.State
		since int64
	}
	m := make(map[uint64]bare)
	for i := range 100_000 {
		m[uint64(i+1)<<6|1<<40] = bare{est, 1}
	}
	evs := churnEvents(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := &evs[i%len(evs)]
		if ev.New == tcpstate.Close {
			delete(m, ev.Sock)
			continue
		}
		m[ev.Sock] = bare{ev.New, ev.Time.UnixNano()}
	}
}
