package render

import (
	"strconv"

	"github.com/socklife/socklife/tracer"
)

// TraceHeader is the header line of AppendTrace's rows; TraceHeaderContainers
// that of its rows with CONTAINER and POD (Names.ContainerColumns).
var (
	TraceHeader           = string(tableHeader(false))
	TraceHeaderContainers = string(tableHeader(true))
)

func tableHeader(containers bool) []byte {
	var b []byte
	for _, c := range []struct {
		title string
		width int
	}{{"TIME", 15}, {"PID", 7}, {"COMM", 15}, {"NETNS", 10}, {"LADDR:LPORT", 21}, {"RADDR:RPORT", 21}, {"OLD", 11}} {
		b = pad(append(b, c.title...), len(b), c.width)
	}
	b = append(b, "   "...) // under "-> "
	b = pad(append(b, "NEW"...), len(b), 11)
	if containers {
		b = pad(append(b, "MS"...), len(b), msWidth)
		b = pad(append(b, "CONTAINER"...), len(b), shortIDLen)
		b = append(b, "POD"...)
	} else {
		b = append(b, "MS"...)
	}
	return append(b, '\n')
}

// msWidth is the MS column's width when columns follow it.
const msWidth = 10

// AppendTrace appends ev as one line of `socklife trace`: the owner (or "-"
// when the tracer does not know it), the tuple, the transition and the
// milliseconds spent in the old state ("-" when unknown, never 0). An accept
// shows ACCEPT as its old state and the wait in the accept queue as MS.
//
// names names the device of a link-local connection (its zone).
func AppendTrace(b []byte, ev *tracer.Event, names *Names) []byte {
	b = ev.Time.AppendFormat(b, "15:04:05.000000")
	b = append(b, ' ')
	if ev.OwnerSource != tracer.OwnerUnknown {
		start := len(b)
		b = strconv.AppendUint(b, uint64(ev.Owner.PID), 10)
		if len(ev.Holders) > 1 {
			// a child not accepted yet: every holder of its listener may
			// take it; the first is one seen accepting, if any
			b = append(b, '+')
			b = strconv.AppendUint(b, uint64(len(ev.Holders)-1), 10)
		}
		b = pad(b, start, 7)
		b = pad(appendTerm(b, ev.Owner.Comm), len(b), 15)
	} else {
		b = pad(append(b, '-'), len(b), 7)
		b = pad(append(b, '-'), len(b), 15)
	}
	b = pad(strconv.AppendUint(b, uint64(ev.Netns), 10), len(b), 10)
	// An address longer than its column (IPv6) pushes the rest of the
	// line right, one space after it, as ss's columns do with -n: the
	// line stays whole, aligned again on the next short one.
	zone := zoneOf(names, ev.Netns, ev.Ifindex, ev.Local, ev.Remote)
	b = pad(appendEndpoint(b, ev.Family, ev.Local, zone, true), len(b), 21)
	b = pad(appendEndpoint(b, ev.Family, ev.Remote, zone, true), len(b), 21)
	if ev.Kind == tracer.Accept {
		b = pad(append(b, "ACCEPT"...), len(b), 11)
	} else {
		b = pad(append(b, ev.Old.KernelName()...), len(b), 11)
	}
	b = append(b, "-> "...)
	b = pad(append(b, ev.New.KernelName()...), len(b), 11)
	start := len(b)
	if ev.InStateKnown {
		b = strconv.AppendFloat(b, msOf(ev.InState), 'f', 3, 64)
	} else {
		b = append(b, '-')
	}
	if names != nil && names.ContainerColumns {
		c, ok := names.Container(ev.SockCgroupID, OwnerCgroup(ev))
		b = pad(b, start, msWidth)
		start = len(b)
		b = pad(appendContainerCell(b, c, ok), start, shortIDLen)
		b = appendPodCell(b, c, ok)
	}
	return append(b, '\n')
}

// OwnerCgroup is the cgroup of the event's owner, 0 when unknown: never the
// current task's, which in softirq is whoever was on the CPU.
func OwnerCgroup(ev *tracer.Event) uint64 {
	if ev.OwnerSource == tracer.OwnerUnknown {
		return 0
	}
	return ev.Owner.CgroupID
}

// pad fills the column that started at start to width, plus one separator.
func pad(b []byte, start, width int) []byte {
	for n := len(b) - start; n < width; n++ {
		b = append(b, ' ')
	}
	return append(b, ' ')
}

// AppendTraceJSON appends ev as one JSON object and a newline (NDJSON), with
// snake_case keys. Unknown values are null: owner when the tracer does not
// know it, in_state_ms when it did not see the socket enter its old state;
// close and accept are null unless the event carries them.
func AppendTraceJSON(b []byte, ev *tracer.Event, names *Names) []byte {
	b = append(b, `{"time":`...)
	b = appendTime(b, ev.Time)
	b = append(b, `,"kind":"`...)
	b = append(b, ev.Kind.String()...)
	b = append(b, `","hook":"`...)
	b = append(b, ev.Hook.String()...)
	b = append(b, `","sock":"0x`...)
	b = strconv.AppendUint(b, ev.Sock, 16)
	b = append(b, `",`...)
	b = appendFlow(b, ev.Netns, ev.Family, ev.Local, ev.Remote, zoneOf(names, ev.Netns, ev.Ifindex, ev.Local, ev.Remote))
	b = appendNetnsName(b, names, ev.Netns)
	b = append(b, `,"old":"`...)
	b = append(b, stateNames[ev.Old]...)
	b = append(b, `","new":"`...)
	b = append(b, stateNames[ev.New]...)
	b = append(b, `","owner":`...)
	if ev.OwnerSource != tracer.OwnerUnknown {
		b = appendTask(b, ev.Owner)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"owner_source":"`...)
	b = append(b, ev.OwnerSource.String()...)
	b = append(b, `","current":`...)
	b = appendTask(b, ev.Current)
	b = append(b, `,"in_state_ms":`...)
	if ev.InStateKnown {
		b = strconv.AppendFloat(b, msOf(ev.InState), 'f', -1, 64)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"close":`...)
	if ev.HasClose {
		b = appendClose(b, ev.Close)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"accept":`...)
	if ev.Kind == tracer.Accept {
		b = appendAccept(b, ev.Local.Port(), ev.Queue)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"listener_inode":`...)
	if ev.ListenerInode != 0 {
		b = strconv.AppendUint(b, ev.ListenerInode, 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"holders":`...)
	if ev.Holders != nil {
		b = appendHolders(b, ev.Holders)
	} else {
		b = append(b, "null"...)
	}
	b = names.appendContainer(b, ev.SockCgroupID, OwnerCgroup(ev))
	return append(b, "}\n"...)
}

func appendTask(b []byte, t tracer.Task) []byte {
	b = append(b, `{"pid":`...)
	b = strconv.AppendUint(b, uint64(t.PID), 10)
	b = append(b, `,"comm":`...)
	b = appendJSONString(b, t.Comm)
	b = append(b, `,"cgroup_id":`...)
	b = strconv.AppendUint(b, t.CgroupID, 10)
	return append(b, '}')
}

func appendHolders(b []byte, hs []tracer.Holder) []byte {
	b = append(b, '[')
	for i, h := range hs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"pid":`...)
		b = strconv.AppendUint(b, uint64(h.PID), 10)
		b = append(b, `,"comm":`...)
		b = appendJSONString(b, h.Comm)
		b = append(b, `,"accepts":`...)
		b = strconv.AppendBool(b, h.Accepts)
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendAccept(b []byte, port uint16, a tracer.QueueInfo) []byte {
	b = append(b, `{"listener_port":`...)
	b = strconv.AppendUint(b, uint64(port), 10)
	if !a.Known {
		return append(b, `,"listener":null,"queue_len":null,"backlog":null}`...)
	}
	b = append(b, `,"listener":"0x`...)
	b = strconv.AppendUint(b, a.Listener, 16)
	b = append(b, `","queue_len":`...)
	b = strconv.AppendUint(b, uint64(a.Len), 10)
	b = append(b, `,"backlog":`...)
	b = strconv.AppendUint(b, uint64(a.Backlog), 10)
	return append(b, '}')
}

func appendClose(b []byte, c tracer.CloseStats) []byte {
	b = append(b, `{"bytes_acked":`...)
	b = strconv.AppendUint(b, c.BytesAcked, 10)
	b = append(b, `,"bytes_received":`...)
	b = strconv.AppendUint(b, c.BytesReceived, 10)
	b = append(b, `,"total_retrans":`...)
	b = strconv.AppendUint(b, uint64(c.TotalRetrans), 10)
	b = append(b, `,"srtt_us":`...)
	b = strconv.AppendInt(b, c.SRTT.Microseconds(), 10)
	return append(b, '}')
}
