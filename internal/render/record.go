package render

// record.go: `socklife record`'s lines, one NDJSON object a connection
// (record.Writer writes them to files). A line:
//
//	{"id":3,"netns":4026531840,"family":"inet","local":"127.0.0.1:41872","remote":"127.0.0.1:8080",
//	 "role":"client","listener":null,"pid":2101,"comm":"curl","cgroup_id":8123,
//	 "states":[{"state":"SYN_SENT","entered_at":"2026-11-20T23:40:01.000120000Z","duration_ms":0.052},...],
//	 "opened_at":"2026-11-20T23:40:01.000120000Z","established_at":"...","closed_at":"...","duration_ms":1.204,
//	 "closed_by":"local","bytes_sent":74,"bytes_received":3021,"retransmits":0,"srtt_us":41,
//	 "accept_wait_ms":null,"seen_from_start":true}
//
// (shown folded; each record is one line). The schema is docs/record.schema.json.

import (
	"strconv"
	"time"

	"github.com/socklife/socklife/internal/live"
)

// AppendRecord appends c as one NDJSON record; names names the device of a
// link-local connection (its zone). Unknown values are null, never
// 0. A connection still open (c.Closed false) gets "open":true and no
// close fields.
func AppendRecord(b []byte, c *live.Conn, names *Names) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, c.ID, 10)
	b = append(b, ',')
	b = appendFlow(b, c.Netns, c.Family, c.Local, c.Remote, zoneOf(names, c.Netns, c.Ifindex, c.Local, c.Remote))
	b = appendNetnsName(b, names, c.Netns)
	b = append(b, `,"role":`...)
	b = appendRole(b, c)
	b = appendOwner(b, c)
	b = append(b, `,"states":[`...)
	for i, s := range c.History {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"state":"`...)
		b = append(b, s.State.KernelName()...)
		b = append(b, `","entered_at":`...)
		b = appendTimeOrNull(b, s.EnteredAt)
		end := c.ClosedAt
		if i+1 < len(c.History) {
			end = c.History[i+1].EnteredAt
		}
		b = append(b, `,"duration_ms":`...)
		b = appendSpan(b, s.EnteredAt, end)
		b = append(b, '}')
	}
	b = append(b, `],"opened_at":`...)
	b = appendTimeOrNull(b, c.OpenedAt)
	b = append(b, `,"established_at":`...)
	b = appendTimeOrNull(b, c.EstablishedAt)
	b = append(b, `,"closed_at":`...)
	b = appendTimeOrNull(b, c.ClosedAt)
	b = append(b, `,"duration_ms":`...)
	b = appendSpan(b, c.OpenedAt, c.ClosedAt)
	b = append(b, `,"closed_by":`...)
	if c.ClosedBy == live.ClosedByUnknown {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendQuote(b, c.ClosedBy.String())
	}
	b = appendStats(b, c)
	b = append(b, `,"accept_wait_ms":`...)
	if c.AcceptWaitKnown {
		b = appendMS(b, c.AcceptWait)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"seen_from_start":`...)
	b = strconv.AppendBool(b, c.SeenFromStart)
	if !c.Closed {
		b = append(b, `,"open":true`...)
	}
	b = names.appendContainer(b, c.SockCgroupID, c.OwnerCgroup())
	return append(b, "}\n"...)
}

func appendRole(b []byte, c *live.Conn) []byte {
	switch c.Role {
	case live.RoleClient, live.RoleServer:
		b = strconv.AppendQuote(b, c.Role.String())
	default:
		b = append(b, "null"...)
	}
	b = append(b, `,"listener":`...)
	if c.Role == live.RoleServer && c.Listener.IsValid() {
		b = append(b, '"')
		b = c.Listener.AppendTo(b)
		return append(b, '"')
	}
	return append(b, "null"...)
}

func appendOwner(b []byte, c *live.Conn) []byte {
	if !c.OwnerKnown {
		return append(b, `,"pid":null,"comm":null,"cgroup_id":null`...)
	}
	b = append(b, `,"pid":`...)
	b = strconv.AppendUint(b, uint64(c.PID), 10)
	b = append(b, `,"comm":`...)
	b = appendJSONString(b, c.Comm)
	b = append(b, `,"cgroup_id":`...)
	if c.CgroupID == 0 {
		return append(b, "null"...)
	}
	return strconv.AppendUint(b, c.CgroupID, 10)
}

func appendStats(b []byte, c *live.Conn) []byte {
	if !c.HasStats {
		return append(b, `,"bytes_sent":null,"bytes_received":null,"retransmits":null,"srtt_us":null`...)
	}
	b = append(b, `,"bytes_sent":`...)
	b = strconv.AppendUint(b, c.Stats.BytesAcked, 10)
	b = append(b, `,"bytes_received":`...)
	b = strconv.AppendUint(b, c.Stats.BytesReceived, 10)
	b = append(b, `,"retransmits":`...)
	b = strconv.AppendUint(b, uint64(c.Stats.TotalRetrans), 10)
	b = append(b, `,"srtt_us":`...)
	return strconv.AppendInt(b, c.Stats.SRTT.Microseconds(), 10)
}

// appendTimeOrNull appends t, or null for a time not known.
func appendTimeOrNull(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	return appendTime(b, t)
}

// appendSpan appends the milliseconds from start to end, null if either is unknown.
func appendSpan(b []byte, start, end time.Time) []byte {
	if start.IsZero() || end.IsZero() {
		return append(b, "null"...)
	}
	return appendMS(b, end.Sub(start))
}

// appendMS appends d in milliseconds with microsecond precision.
func appendMS(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
}
