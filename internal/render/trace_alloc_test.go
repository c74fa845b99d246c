package render

import (
	"net/netip"
	"testing"
	"time"

	"github.com/socklife/socklife/tracer"

	"github.com/socklife/socklife/internal/tcpstate"
)

// sampleEvents are the shapes the formatters meet: a state change with
// everything known, a close with its stats, an accept with its listener.
func sampleEvents() []tracer.Event {
	task := tracer.Task{PID: 4242, Comm: "nginx", CgroupID: 7}
	base := tracer.Event{
		Kind: tracer.StateChange, Hook: tracer.HookTracepoint, Time: time.Unix(1763680000, 123456789),
		Sock: 0xffff888176591bc0, Netns: 4026531833, Family: 2,
		Local:  netip.MustParseAddrPort("127.0.0.1:43495"),
		Remote: netip.MustParseAddrPort("127.0.0.1:48630"),
		Old:    tcpstate.SynRecv, New: tcpstate.Established,
		Owner: task, OwnerSource: tracer.OwnerTask, Current: task,
		InState: 7 * time.Microsecond, InStateKnown: true,
	}
	closed := base
	closed.Old, closed.New, closed.HasClose = tcpstate.LastAck, tcpstate.Close, true
	closed.Close = tracer.CloseStats{BytesAcked: 1, BytesReceived: 1, SRTT: 30 * time.Microsecond}
	accepted := base
	accepted.Kind, accepted.Old = tracer.Accept, tcpstate.Established
	accepted.Queue = tracer.QueueInfo{Known: true, Listener: 0xffff888176590000, Backlog: 4096}
	return []tracer.Event{base, closed, accepted}
}

// The formatters run once per event at 100k+ events/s: an allocation
// each is garbage-collector work the tracer's CPU budget has no room for.
func TestFormatNoAllocs(t *testing.T) {
	events := sampleEvents()
	names := &Names{}
	buf := make([]byte, 0, 4096)
	for name, format := range map[string]func([]byte, *tracer.Event, *Names) []byte{"json": AppendTraceJSON, "table": AppendTrace} {
		for i := range events {
			if n := testing.AllocsPerRun(100, func() { buf = format(buf[:0], &events[i], names) }); n != 0 {
				t.Errorf("%s of %s: %v allocations per event, want 0", name, events[i].Old.String()+">"+events[i].New.String(), n)
			}
		}
	}
}

// go test -run '^$' -bench Append ./internal/render: ns per event of each format.
func BenchmarkAppendTraceJSON(b *testing.B) { benchFormat(b, AppendTraceJSON) }
func BenchmarkAppendTrace(b *testing.B)     { benchFormat(b, AppendTrace) }

func benchFormat(b *testing.B, format func([]byte, *tracer.Event, *Names) []byte) {
	events := sampleEvents()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = format(buf[:0], &events[i%len(events)], nil)
	}
}
