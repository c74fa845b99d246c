package tracer

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// readSamples reads ring-buffer records captured by the integration tests
// (SOCKLIFE_UPDATE_TESTDATA=1 rewrites them).
func readSamples(t *testing.T, name string) [][]byte {
	t.Helper()
	return testutil.ReadHexLines(t, filepath.Join("testdata", name))
}

func decodeAll(t *testing.T, name string) []Event {
	t.Helper()
	out, err := DecodeRecords(readSamples(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The captured connections decode to the sequences the kernel produced,
// whichever hook wrote them.
func TestDecodeSamples(t *testing.T) {
	for _, tc := range []struct {
		file string
		hook Hook
		// per socket, keyed by its first transition
		want map[string]string
	}{
		{"client_closes_first_raw_tracepoint.hex", HookRawTracepoint, map[string]string{
			"CLOSE>LISTEN": listenerSeq, "CLOSE>SYN_SENT": activeCloserClient, "LISTEN>SYN_RECV": passiveCloserChild}},
		{"client_closes_first_tracepoint.hex", HookTracepoint, map[string]string{
			"CLOSE>LISTEN": listenerSeq, "CLOSE>SYN_SENT": activeCloserClient, "LISTEN>SYN_RECV": passiveCloserChild}},
		{"ipv6_tracepoint.hex", HookTracepoint, map[string]string{
			"CLOSE>LISTEN": listenerSeq, "CLOSE>SYN_SENT": activeCloserClient, "LISTEN>SYN_RECV": passiveCloserChild}},
		{"dual_stack_raw_tracepoint.hex", HookRawTracepoint, map[string]string{
			"CLOSE>LISTEN": listenerSeq, "CLOSE>SYN_SENT": activeCloserClient, "LISTEN>SYN_RECV": passiveCloserChild}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			events := decodeAll(t, tc.file)
			socks := bySock(events)
			for first, want := range tc.want {
				if got := transitions(socks[first]); got != want {
					t.Errorf("%s:\n got %s\nwant %s", first, got, want)
				}
			}
			for _, ev := range events {
				if want := tc.hook; ev.Kind == Accept {
					want = HookSyscallTracepoint
					if ev.Hook != want {
						t.Errorf("%s from hook %d, want %d", transition(ev), ev.Hook, want)
					}
				} else if ev.Hook != want {
					t.Errorf("%s from hook %d, want %d", transition(ev), ev.Hook, want)
				}
				if ev.OwnerSource == OwnerUnknown || ev.Owner.Comm != "tracer.test" {
					t.Errorf("%s: owner %+v (%s)", transition(ev), ev.Owner, ev.OwnerSource)
				}
			}
		})
	}
}

// In the dual-stack capture the client is AF_INET and the accepted child
// AF_INET6 with v4-mapped addresses: both must read as plain IPv4.
func TestDecodeV4Mapped(t *testing.T) {
	socks := bySock(decodeAll(t, "dual_stack_raw_tracepoint.hex"))
	lo := netip.MustParseAddr("127.0.0.1")
	for _, ev := range socks["LISTEN>SYN_RECV"][1:] {
		if ev.Family != unix.AF_INET6 || ev.Local.Addr() != lo || ev.Remote.Addr() != lo {
			t.Errorf("%s: family %d %s -> %s, want AF_INET6 127.0.0.1 -> 127.0.0.1", transition(ev), ev.Family, ev.Local, ev.Remote)
		}
	}
	if l := socks["CLOSE>LISTEN"][0].Local.Addr(); l != netip.IPv6Unspecified() {
		t.Errorf("dual-stack listener bound to %s, want ::", l)
	}
}

// encode turns a wire event into a record, for edge cases no capture has.
func encode(w socklifeEvent) []byte {
	return bytes.Clone(unsafe.Slice((*byte)(unsafe.Pointer(&w)), wireSize))
}

func comm(s string) (c [16]uint8) {
	copy(c[:], s)
	return c
}

func TestDecodeEdges(t *testing.T) {
	v4mapped := [16]uint8{10: 0xff, 11: 0xff, 12: 10, 13: 1, 14: 2, 15: 3}
	base := socklifeEvent{Kind: wireState, Hook: 1, Family: unix.AF_INET, Oldstate: 1, Newstate: 4,
		Saddr: v4mapped, Sport: 80, Daddr: v4mapped, Dport: 5555, TsNs: 1_000_000_000}
	for _, tc := range []struct {
		name    string
		mod     func(w *socklifeEvent)
		raw     func(b []byte) []byte
		wantErr string
		check   func(t *testing.T, ev *Event)
	}{
		{name: "short record", raw: func(b []byte) []byte { return b[:10] }, wantErr: "record of 10 bytes"},
		{name: "unknown kind", mod: func(w *socklifeEvent) { w.Kind = 9 }, wantErr: "unknown event kind 9"},
		{name: "state past the kernel's", mod: func(w *socklifeEvent) { w.Newstate = 13 }, wantErr: "unknown TCP state in 1 -> 13"},
		{name: "old state 0", mod: func(w *socklifeEvent) { w.Oldstate = 0 }, wantErr: "unknown TCP state in 0 -> 4"},
		{name: "accept of an unknown state", mod: func(w *socklifeEvent) { w.Kind, w.Oldstate, w.Newstate = wireAccept, 255, 255 }, wantErr: "unknown TCP state"},
		{name: "v4 reads as v4", check: func(t *testing.T, ev *Event) {
			if ev.Local.String() != "10.1.2.3:80" || ev.Remote.String() != "10.1.2.3:5555" {
				t.Errorf("addresses %s %s", ev.Local, ev.Remote)
			}
		}},
		{name: "unknown owner and time in state", check: func(t *testing.T, ev *Event) {
			if ev.OwnerSource != OwnerUnknown || ev.Owner != (Task{}) || ev.InStateKnown {
				t.Errorf("owner %+v %s, in state known %v", ev.Owner, ev.OwnerSource, ev.InStateKnown)
			}
		}},
		{name: "zero time in state is known, not unknown", mod: func(w *socklifeEvent) { w.Flags = flagInStateKnown }, check: func(t *testing.T, ev *Event) {
			if !ev.InStateKnown || ev.InState != 0 {
				t.Errorf("in state %v known %v, want 0 known", ev.InState, ev.InStateKnown)
			}
		}},
		{name: "comm of 16 bytes, control bytes", mod: func(w *socklifeEvent) {
			w.Flags = flagOwnerTask
			w.Owner.Comm = comm("a\"b\\c\x01defghijklmn")
		}, check: func(t *testing.T, ev *Event) {
			// 16 bytes and no NUL: the kernel's 15 are kept, as --comm
			// compares them
			if ev.Owner.Comm != "a\"b\\c\x01defghijkl" {
				t.Errorf("comm %q", ev.Owner.Comm)
			}
		}},
		{name: "close stats", mod: func(w *socklifeEvent) {
			w.Newstate = uint8(tcpstate.Close)
			w.Flags = flagCloseStats
			w.BytesAcked, w.BytesReceived, w.TotalRetrans, w.SrttUs = 10, 20, 3, 250
		}, check: func(t *testing.T, ev *Event) {
			want := CloseStats{BytesAcked: 10, BytesReceived: 20, TotalRetrans: 3, SRTT: 250 * time.Microsecond}
			if !ev.HasClose || ev.Close != want {
				t.Errorf("close %+v %v", ev.Close, ev.HasClose)
			}
		}},
		{name: "accept without listener", mod: func(w *socklifeEvent) { w.Kind = wireAccept }, check: func(t *testing.T, ev *Event) {
			if ev.Kind != Accept || ev.Local.Port() != 80 || ev.Queue != (QueueInfo{}) {
				t.Errorf("accept %+v", ev.Queue)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := base
			if tc.mod != nil {
				tc.mod(&w)
			}
			raw := encode(w)
			if tc.raw != nil {
				raw = tc.raw(raw)
			}
			var ev Event
			var scratch socklifeEvent
			comms := newCommCache()
			err := decode(raw, &scratch, clock{}, &comms, &ev)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, &ev)
		})
	}
}

func TestClockOffset(t *testing.T) {
	c := newClock()
	var mono unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	if d := time.Since(c.wall(uint64(mono.Nano()))); d < 0 || d > time.Second {
		t.Errorf("a monotonic now reads %v off the wall clock", d)
	}
}
