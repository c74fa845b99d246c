package render

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/tracer"
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
// Naming the container (a cache keyed by cgroup id) and the namespace
// costs none either.
func TestFormatNoAllocs(t *testing.T) {
	attributed, cgroup := containerNames(t)
	for _, names := range []*Names{{}, attributed} {
		events := sampleEvents()
		if names.Containers != nil {
			names.ContainerColumns = true
			for i := range events {
				events[i].SockCgroupID = cgroup
			}
		}
		buf := make([]byte, 0, 4096)
		for name, format := range map[string]func([]byte, *tracer.Event, *Names) []byte{"json": AppendTraceJSON, "table": AppendTrace} {
			for i := range events {
				buf = format(buf[:0], &events[i], names) // fills the caches
				if names.Containers != nil && !bytes.Contains(buf, []byte("web-7d9f")) {
					t.Fatalf("%s: no container in %s", name, buf)
				}
				if n := testing.AllocsPerRun(100, func() { buf = format(buf[:0], &events[i], names) }); n != 0 {
					t.Errorf("%s of %s (containers %v): %v allocations per event, want 0", name, events[i].Old.String()+">"+events[i].New.String(), names.Containers != nil, n)
				}
			}
		}
	}
}

const testContainerID = "5e1f0c6f0c1b8a55d4b7d1e0a7ad3f5a6f0d9e8c7b6a5f4e3d2c1b0a99887766"

// containerNames is Names attributing events to a container cgroup made
// for the test, and that cgroup's id. Root only.
func containerNames(tb testing.TB) (*Names, uint64) {
	tb.Helper()
	res := testutil.Resolver(tb)
	_, id := testutil.Cgroup(tb, fmt.Sprintf("/socklife-render-%d/kubepods/burstable/pod0b5a1c2e-1111-4222-8333-944455556666/%s", os.Getpid(), testContainerID))
	a := container.NewAttributor(res, func(container.Runtime, string) (string, container.Pod, bool) {
		return "web", container.Pod{Namespace: "shop", Name: "web-7d9f"}, true
	}, nil)
	return &Names{Containers: a, Netns: container.NewNetnsNames(a)}, id
}

// go test -run '^$' -bench Append ./internal/render: ns per event of each
// format, without and with container attribution (the ratio is its cost).
func BenchmarkAppendTraceJSON(b *testing.B) {
	b.Run("host", func(b *testing.B) { benchFormat(b, AppendTraceJSON, nil, 0) })
	b.Run("host-attributed", func(b *testing.B) { // the lookups, answering "the host's"
		names, _ := containerNames(b)
		benchFormat(b, AppendTraceJSON, names, 1)
	})
	b.Run("containers", func(b *testing.B) {
		names, cgroup := containerNames(b)
		benchFormat(b, AppendTraceJSON, names, cgroup)
	})
}

func BenchmarkAppendTrace(b *testing.B) {
	b.Run("host", func(b *testing.B) { benchFormat(b, AppendTrace, nil, 0) })
	b.Run("containers", func(b *testing.B) {
		names, cgroup := containerNames(b)
		names.ContainerColumns = true
		benchFormat(b, AppendTrace, names, cgroup)
	})
}

func benchFormat(b *testing.B, format func([]byte, *tracer.Event, *Names) []byte, names *Names, cgroup uint64) {
	events := sampleEvents()
	for i := range events {
		events[i].SockCgroupID = cgroup
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = format(buf[:0], &events[i%len(events)], names)
	}
}
