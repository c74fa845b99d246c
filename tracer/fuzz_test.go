package tracer

import (
	"testing"

	"github.com/socklife/socklife/internal/testutil"
)

// The ring buffer holds what the BPF side wrote; a record from a newer or
// broken program must come out as an error (counted as a bad record), or as
// an event whose kind and states are ones the rest of socklife knows: a
// state past the kernel's once panicked downstream, in the live table.
// Seeded with every captured record.
func FuzzDecode(f *testing.F) {
	for _, recs := range testutil.Captures(f, "testdata") {
		for _, raw := range recs {
			f.Add(raw)
		}
	}
	f.Add(encode(socklifeEvent{Kind: wireState, Oldstate: 7, Newstate: 13}))
	f.Add(encode(socklifeEvent{Kind: 9, Oldstate: 7, Newstate: 2}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var w socklifeEvent
		var ev Event
		comms := newCommCache()
		if err := decode(raw, &w, clock{}, &comms, &ev); err != nil {
			return
		}
		switch ev.Kind {
		case StateChange, Accept, SynackRetransmit:
		default:
			t.Errorf("kind %d decoded", ev.Kind)
		}
		if !ev.Old.Known() || !ev.New.Known() {
			t.Errorf("states %d -> %d decoded", ev.Old, ev.New)
		}
		if len(ev.Owner.Comm) > 15 || len(ev.Current.Comm) > 15 {
			t.Errorf("comm %q / %q longer than the kernel keeps", ev.Owner.Comm, ev.Current.Comm)
		}
	})
}
