package render

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// envUpdate, set to 1, rewrites the golden files from what the code prints.
const envUpdate = "SOCKLIFE_UPDATE_TESTDATA"

// captured decodes ring-buffer records the tracer's tests captured from the
// kernel (tracer/testdata).
func captured(t *testing.T, name string) []tracer.Event {
	t.Helper()
	raws := testutil.ReadHexLines(t, filepath.Join("..", "..", "tracer", "testdata", name))
	evs, err := tracer.DecodeRecords(raws)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// The table and JSON of a whole connection, against golden files
// (SOCKLIFE_UPDATE_TESTDATA=1 rewrites them).
func TestTraceGolden(t *testing.T) {
	events := captured(t, "client_closes_first_raw_tracepoint.hex")
	var table, ndjson []byte
	table = append(table, TraceHeader...)
	for i := range events {
		table = AppendTrace(table, &events[i], nil)
		ndjson = AppendTraceJSON(ndjson, &events[i], nil)
	}
	for name, got := range map[string][]byte{"client_closes_first.table": table, "client_closes_first.ndjson": ndjson} {
		path := filepath.Join("testdata", name)
		if os.Getenv(envUpdate) == "1" {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
	for i, line := range strings.Split(strings.TrimSpace(string(ndjson)), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("JSON line %d invalid: %s", i, line)
		}
	}
}

// What is unknown prints as "-" in the table and null in JSON, never as 0.
func TestTraceEdges(t *testing.T) {
	base := sampleEvents()[0]
	for _, tc := range []struct {
		name  string
		mod   func(ev *tracer.Event)
		check func(t *testing.T, line, js string)
	}{
		{name: "unknown owner and time in state", mod: func(ev *tracer.Event) {
			ev.OwnerSource, ev.Owner, ev.InStateKnown, ev.InState = tracer.OwnerUnknown, tracer.Task{}, false, 0
		}, check: func(t *testing.T, line, js string) {
			if f := strings.Fields(line); f[1] != "-" || f[2] != "-" || f[len(f)-1] != "-" {
				t.Errorf("table line %q, want - for pid, comm and ms", line)
			}
			if !strings.Contains(js, `"owner":null`) || !strings.Contains(js, `"in_state_ms":null`) {
				t.Errorf("json %s, want null owner and in_state_ms", js)
			}
		}},
		{name: "zero time in state is known, not unknown", mod: func(ev *tracer.Event) {
			ev.InStateKnown, ev.InState = true, 0
		}, check: func(t *testing.T, line, js string) {
			if !strings.HasSuffix(line, " 0.000\n") {
				t.Errorf("table line %q, want 0.000 ms", line)
			}
		}},
		{name: "comm with quotes and control bytes", mod: func(ev *tracer.Event) {
			ev.Owner.Comm = "a\"b\\c\x01defghijklm"
		}, check: func(t *testing.T, line, js string) {
			var back struct{ Owner tracer.Task }
			if err := json.Unmarshal([]byte(js), &back); err != nil || back.Owner.Comm != "a\"b\\c\x01defghijklm" {
				t.Errorf("json %s: %v, comm %q", js, err, back.Owner.Comm)
			}
		}},
		{name: "accept without listener", mod: func(ev *tracer.Event) {
			ev.Kind, ev.Queue = tracer.Accept, tracer.QueueInfo{}
		}, check: func(t *testing.T, line, js string) {
			if !strings.Contains(js, `"accept":{"listener_port":43495,"listener":null,"queue_len":null,"backlog":null}`) {
				t.Errorf("json %s", js)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := base
			tc.mod(&ev)
			tc.check(t, string(AppendTrace(nil, &ev, nil)), string(AppendTraceJSON(nil, &ev, nil)))
		})
	}
}

// An IPv6 socket talking IPv4: the tracer gives trace and record the
// address unmapped, snapshot has it v4-mapped from sock_diag, as ss prints
// it; every command prints the v4-mapped form. A long IPv6 address pushes
// the columns after it, one space apart, never into each other.
func TestTraceAddressesAsSnapshot(t *testing.T) {
	ev := tracer.Event{Family: unix.AF_INET6, Local: netip.MustParseAddrPort("127.0.0.1:8080"),
		Remote: netip.MustParseAddrPort("[2001:db8:1234:5678:9abc:def0:1234:5678]:54321"),
		Old:    tcpstate.SynRecv, New: tcpstate.Established}
	line := string(AppendTrace(nil, &ev, nil))
	f := strings.Fields(line)
	if !strings.Contains(line, " [::ffff:127.0.0.1]:8080 ") || len(f) < 8 || f[5] != "[2001:db8:1234:5678:9abc:def0:1234:5678]:54321" || f[6] != "SYN_RECV" {
		t.Errorf("trace line %q", line)
	}
	if js := string(AppendTraceJSON(nil, &ev, nil)); !strings.Contains(js, `"local":"[::ffff:127.0.0.1]:8080"`) {
		t.Errorf("trace JSON %s", js)
	}
	s := snapshot.Socket{Protocol: snapshot.TCP, Family: unix.AF_INET6, Local: netip.MustParseAddrPort("[::ffff:127.0.0.1]:8080")}
	if j := SocketToJSON(&s, false, nil); j.Local != "[::ffff:127.0.0.1]:8080" {
		t.Errorf("snapshot JSON local %q", j.Local)
	}
	ev4 := tracer.Event{Family: unix.AF_INET, Local: netip.MustParseAddrPort("127.0.0.1:8080")}
	if line := string(AppendTrace(nil, &ev4, nil)); !strings.Contains(line, " 127.0.0.1:8080 ") {
		t.Errorf("IPv4 trace line %q", line)
	}
}
