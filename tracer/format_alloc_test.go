package tracer

import (
	"net/netip"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/tcpstate"
)

// sampleEvents are the shapes the formatters meet: a state change with
// everything known, a close with its stats, an accept with its listener.
func sampleEvents() []Event {
	task := Task{PID: 4242, Comm: "nginx", CgroupID: 7}
	base := Event{
		Kind: StateChange, Hook: HookTracepoint, Time: time.Unix(1763680000, 123456789),
		Sock: 0xffff888176591bc0, Netns: 4026531833, Family: 2,
		Local:  netip.MustParseAddrPort("127.0.0.1:43495"),
		Remote: netip.MustParseAddrPort("127.0.0.1:48630"),
		Old:    tcpstate.SynRecv, New: tcpstate.Established,
		Owner: task, OwnerSource: OwnerTask, Current: task,
		InState: 7 * time.Microsecond, InStateKnown: true,
	}
	closed := base
	closed.Old, closed.New, closed.HasClose = tcpstate.LastAck, tcpstate.Close, true
	closed.Close = CloseStats{BytesAcked: 1, BytesReceived: 1, SRTT: 30 * time.Microsecond}
	accepted := base
	accepted.Kind, accepted.Old = Accept, tcpstate.Established
	accepted.Queue = QueueInfo{Known: true, Listener: 0xffff888176590000, Backlog: 4096}
	return []Event{base, closed, accepted}
}

// The formatters run once per event at 100k+ events/s: an allocation
// each is garbage-collector work the tracer's CPU budget has no room for.
func TestFormatNoAllocs(t *testing.T) {
	events := sampleEvents()
	buf := make([]byte, 0, 4096)
	for name, format := range map[string]func([]byte, *Event) []byte{"json": AppendJSON, "table": AppendTable} {
		for i := range events {
			if n := testing.AllocsPerRun(100, func() { buf = format(buf[:0], &events[i]) }); n != 0 {
				t.Errorf("%s of %s: %v allocations per event, want 0", name, transition(events[i]), n)
			}
		}
	}
}

// go test -run '^$' -bench Append ./tracer: ns per event of each format.
func BenchmarkAppendJSON(b *testing.B)  { benchFormat(b, AppendJSON) }
func BenchmarkAppendTable(b *testing.B) { benchFormat(b, AppendTable) }

func benchFormat(b *testing.B, format func([]byte, *Event) []byte) {
	events := sampleEvents()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = format(buf[:0], &events[i%len(events)])
	}
}
