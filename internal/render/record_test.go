package render

import (
	"encoding/json"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/live"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/tracer"
)

// The keys the issue specifies, in order; "open" only for open connections.
var wantKeys = []string{"id", "netns", "family", "local", "remote", "role", "listener", "pid", "comm", "cgroup_id",
	"states", "opened_at", "established_at", "closed_at", "duration_ms", "closed_by", "bytes_sent",
	"bytes_received", "retransmits", "srtt_us", "accept_wait_ms", "seen_from_start"}

var t0 = time.Date(2026, 11, 20, 23, 40, 1, 120000, time.UTC)

func at(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }

func decode(t *testing.T, line []byte) map[string]any {
	t.Helper()
	if n := strings.Count(string(line), "\n"); n != 1 || line[len(line)-1] != '\n' {
		t.Fatalf("record is not one line: %q", line)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	return m
}

// keysInOrder lists the top-level keys of one JSON object as written.
func keysInOrder(t *testing.T, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(line)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", line)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestAppendRecordClosed(t *testing.T) {
	c := &live.Conn{
		ID: 3, Netns: 4026531840, Family: unix.AF_INET,
		Local: netip.MustParseAddrPort("127.0.0.1:8080"), Remote: netip.MustParseAddrPort("127.0.0.1:41872"),
		Role: live.RoleServer, Listener: netip.MustParseAddrPort("0.0.0.0:8080"),
		OwnerKnown: true, PID: 2101, Comm: "we\"ird\x01", CgroupID: 8123, SeenFromStart: true,
		History:  []live.Step{{State: tcpstate.SynRecv, EnteredAt: at(0)}, {State: tcpstate.Established, EnteredAt: at(0.052)}, {State: tcpstate.CloseWait, EnteredAt: at(1)}},
		OpenedAt: at(0), EstablishedAt: at(0.052), AcceptWait: 1500 * time.Microsecond, AcceptWaitKnown: true,
		ClosedBy: live.ClosedByRemote, Closed: true, ClosedAt: at(1.204), HasStats: true,
		Stats: tracer.CloseStats{BytesAcked: 74, BytesReceived: 3021, TotalRetrans: 2, SRTT: 41 * time.Microsecond},
	}
	line := AppendRecord(nil, c, nil)
	if keys := keysInOrder(t, line); !slices.Equal(keys, wantKeys) {
		t.Errorf("keys %v\nwant %v", keys, wantKeys)
	}
	m := decode(t, line)
	for k, want := range map[string]any{
		"local": "127.0.0.1:8080", "role": "server", "listener": "0.0.0.0:8080", "comm": "we\"ird\x01",
		"opened_at": "2026-11-20T23:40:01.000120000Z", "closed_at": "2026-11-20T23:40:01.001324000Z",
		"duration_ms": 1.204, "closed_by": "remote", "bytes_sent": 74.0, "srtt_us": 41.0, "retransmits": 2.0,
		"accept_wait_ms": 1.5, "seen_from_start": true, "family": "inet", "cgroup_id": 8123.0,
	} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	states := m["states"].([]any)
	last := states[2].(map[string]any)
	first := states[0].(map[string]any)
	if len(states) != 3 || first["state"] != "SYN_RECV" || first["duration_ms"] != 0.052 || last["state"] != "CLOSE_WAIT" || last["duration_ms"] != 0.204 {
		t.Errorf("states %v", states)
	}
	if _, ok := m["open"]; ok {
		t.Error("a closed record has \"open\"")
	}
}

// A connection that predates the recording and is still open at stop:
// everything not seen is null, never 0.
func TestAppendRecordUnknowns(t *testing.T) {
	c := &live.Conn{
		ID: 9, Family: unix.AF_INET6, Local: netip.MustParseAddrPort("[::1]:5000"), Remote: netip.MustParseAddrPort("[::1]:80"),
		Role: live.RoleClient, History: []live.Step{{State: tcpstate.Established}, {State: tcpstate.FinWait1, EnteredAt: at(3)}},
	}
	line := AppendRecord(nil, c, nil)
	m := decode(t, line)
	for _, k := range []string{"listener", "pid", "comm", "cgroup_id", "opened_at", "established_at", "closed_at", "duration_ms",
		"closed_by", "bytes_sent", "bytes_received", "retransmits", "srtt_us", "accept_wait_ms"} {
		if v, ok := m[k]; !ok || v != nil {
			t.Errorf("%s = %#v, want null", k, v)
		}
	}
	states := m["states"].([]any)
	if s := states[0].(map[string]any); s["entered_at"] != nil || s["duration_ms"] != nil {
		t.Errorf("first state %v: want unknown entry and duration", s)
	}
	if s := states[1].(map[string]any); s["entered_at"] != "2026-11-20T23:40:01.003120000Z" || s["duration_ms"] != nil {
		t.Errorf("current state %v: want its entry time and no duration yet", s)
	}
	if m["open"] != true || m["seen_from_start"] != false || m["family"] != "inet6" || m["remote"] != "[::1]:80" {
		t.Errorf("open %v seen %v family %v remote %v", m["open"], m["seen_from_start"], m["family"], m["remote"])
	}
}

func TestAppendRecordInvalidUTF8(t *testing.T) {
	c := &live.Conn{OwnerKnown: true, Comm: "a\xffb\\"}
	if m := decode(t, AppendRecord(nil, c, nil)); m["comm"] != "a\ufffdb\\" {
		t.Errorf("comm %q", m["comm"])
	}
}

// The JSON Schema in docs/ lists exactly the keys AppendRecord writes.
func TestSchemaMatchesRecords(t *testing.T) {
	data, err := os.ReadFile("../../docs/record.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("docs/record.schema.json: %v", err)
	}
	if !slices.Equal(schema.Required, wantKeys) {
		t.Errorf("schema requires %v\nrecords have %v", schema.Required, wantKeys)
	}
	props := slices.Sorted(maps.Keys(schema.Properties))
	want := slices.Sorted(slices.Values(append(slices.Clone(wantKeys), "open", "container", "netns_name"))) // the optional ones
	if !slices.Equal(props, want) {
		t.Errorf("schema describes %v\nrecords have %v", props, want)
	}
}
