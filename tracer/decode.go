package tracer

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
)

// Flag bits and kinds of struct event, as bpf2go generated them from
// bpf/socklife.h (short names for the decoder's switch and masks).
const (
	flagOwnerTask     = uint8(socklifeEventFlagFLAG_OWNER_TASK)
	flagOwnerListener = uint8(socklifeEventFlagFLAG_OWNER_LISTENER)
	flagInStateKnown  = uint8(socklifeEventFlagFLAG_IN_STATE_KNOWN)
	flagListenerKnown = uint8(socklifeEventFlagFLAG_LISTENER_KNOWN)
	flagCloseStats    = uint8(socklifeEventFlagFLAG_CLOSE_STATS)
	flagOwnerSeeded   = uint8(socklifeEventFlagFLAG_OWNER_SEEDED)
	flagEnqueue       = uint8(socklifeEventFlagFLAG_ENQUEUE)

	wireState  = uint8(socklifeEventKindEVENT_STATE)
	wireAccept = uint8(socklifeEventKindEVENT_ACCEPT)
	wireSynack = uint8(socklifeEventKindEVENT_SYNACK_RETRANS)
)

var wireSize = int(unsafe.Sizeof(socklifeEvent{}))

// decode turns one ring-buffer record into ev. It copies the record into
// w rather than casting, since the record buffer's alignment is not ours to assume.
func decode(raw []byte, w *socklifeEvent, c clock, comms *commCache, ev *Event) error {
	if len(raw) < wireSize {
		return fmt.Errorf("record of %d bytes, want %d", len(raw), wireSize)
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(w)), wireSize), raw)
	var kind Kind
	switch w.Kind {
	case wireState:
		kind = StateChange
	case wireAccept:
		kind = Accept
	case wireSynack:
		kind = SynackRetransmit
	default:
		return fmt.Errorf("unknown event kind %d", w.Kind)
	}
	// Above, states index tables sized by the states the kernel has.
	if old, new := tcpstate.State(w.Oldstate), tcpstate.State(w.Newstate); !old.Known() || !new.Known() {
		return fmt.Errorf("unknown TCP state in %d -> %d", w.Oldstate, w.Newstate)
	}
	*ev = Event{
		Kind:          kind,
		Hook:          Hook(w.Hook),
		Time:          c.wall(w.TsNs),
		Sock:          w.Skaddr,
		Netns:         w.Netns,
		Family:        w.Family,
		Local:         addrPort(w.Saddr, w.Sport),
		Remote:        addrPort(w.Daddr, w.Dport),
		Old:           tcpstate.State(w.Oldstate),
		New:           tcpstate.State(w.Newstate),
		Current:       Task{PID: w.Current.Tgid, Comm: comms.name(w.Current.Comm), CgroupID: w.Current.CgroupId},
		InState:       time.Duration(w.InStateNs),
		InStateKnown:  w.Flags&flagInStateKnown != 0,
		ListenerInode: w.ListenerIno,
		Ifindex:       w.BoundDevIf,
		SockCgroupID:  w.SockCgroup,
		Enqueue:       w.Flags&flagEnqueue != 0,
	}
	if ev.OwnerSource = ownerSource(w.Flags); ev.OwnerSource != OwnerUnknown {
		ev.Owner = Task{PID: w.Owner.Tgid, Comm: comms.name(w.Owner.Comm), CgroupID: w.Owner.CgroupId}
	}
	if w.Flags&flagCloseStats != 0 {
		ev.HasClose = true
		ev.Close = CloseStats{
			BytesAcked:    w.BytesAcked,
			BytesReceived: w.BytesReceived,
			TotalRetrans:  w.TotalRetrans,
			SRTT:          time.Duration(w.SrttUs) * time.Microsecond,
		}
	}
	if w.Flags&flagListenerKnown != 0 {
		ev.Queue = QueueInfo{
			Known:    true,
			Listener: w.Listener,
			Inode:    w.ListenerIno,
			Len:      w.AckBacklog,
			Backlog:  w.MaxAckBacklog,
			SynQueue: w.SynQueue,
			Drops:    w.ListenerDrops,
		}
	}
	return nil
}

// ownerSource reads the owner flags of an event (or of sock_info's
// owner_flag, which holds the same values).
func ownerSource(flags uint8) OwnerSource {
	switch {
	case flags&flagOwnerTask != 0:
		return OwnerTask
	case flags&flagOwnerListener != 0:
		return OwnerListener
	case flags&flagOwnerSeeded != 0:
		return OwnerSnapshot
	}
	return OwnerUnknown
}

// DecodeRecords decodes ring-buffer records captured to a file (raw, as
// Next reads them) the way Next does, with times on CLOCK_MONOTONIC read
// as nanoseconds since the Unix epoch, in UTC.
func DecodeRecords(raws [][]byte) ([]Event, error) {
	var w socklifeEvent
	comms := newCommCache()
	out := make([]Event, len(raws))
	for i, raw := range raws {
		if err := decode(raw, &w, clock{}, &comms, &out[i]); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		out[i].Time = out[i].Time.UTC()
	}
	return out, nil
}

// addrPort reads the kernel's 16-byte form; IPv4 arrives v4-mapped, and a
// dual-stack socket's v4-mapped peer is shown as the IPv4 address it is.
func addrPort(a [16]uint8, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port)
}

// commCache interns command names: the same few processes own most events,
// and a string per event is garbage the hot path does not need.
type commCache map[[16]uint8]string

const commCacheMax = 4096

func newCommCache() commCache { return make(commCache) }

func (c *commCache) name(raw [16]uint8) string {
	if s, ok := (*c)[raw]; ok {
		return s
	}
	if len(*c) >= commCacheMax {
		*c = make(commCache)
	}
	// The kernel keeps 15 bytes and a NUL; a record without the NUL is
	// read as the kernel would have kept it.
	n := bytes.IndexByte(raw[:], 0)
	if n < 0 || n > len(raw)-1 {
		n = len(raw) - 1
	}
	s := string(raw[:n])
	(*c)[raw] = s
	return s
}

// clock converts bpf_ktime_get_ns (CLOCK_MONOTONIC) to wall-clock time with
// one offset taken at start, so event times do not jump with NTP steps.
type clock struct{ offset int64 }

func newClock() clock {
	best := clock{}
	bestGap := int64(-1)
	// Keep the reading bracketed most tightly by two monotonic reads.
	for range 5 {
		var m1, r, m2 unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &m1)
		unix.ClockGettime(unix.CLOCK_REALTIME, &r)
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &m2)
		gap := m2.Nano() - m1.Nano()
		if bestGap < 0 || gap < bestGap {
			bestGap = gap
			best.offset = r.Nano() - (m1.Nano()+m2.Nano())/2
		}
	}
	return best
}

func (c clock) wall(mono uint64) time.Time { return time.Unix(0, int64(mono)+c.offset) }
