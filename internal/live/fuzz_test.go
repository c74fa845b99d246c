package live

import (
	"bytes"
	"testing"

	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/tracer"
)

// Whatever the ring buffer holds, decoded as the tracer decodes it and
// applied in any order, the table neither panics nor loses count of what
// it holds. Seeded with the captured connections, whole.
func FuzzApply(f *testing.F) {
	size := 0
	for _, recs := range testutil.Captures(f, "../../tracer/testdata") {
		size = len(recs[0])
		f.Add(bytes.Join(recs, nil))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tbl := NewTable(nil)
		for len(data) >= size {
			evs, err := tracer.DecodeRecords([][]byte{data[:size]})
			data = data[size:]
			if err != nil {
				continue
			}
			if err := tbl.Apply(&evs[0]); err != nil {
				t.Fatal(err)
			}
		}
		total := 0
		for _, n := range tbl.Counts() {
			total += n
		}
		if total != tbl.Len() {
			t.Errorf("counts add up to %d, table holds %d", total, tbl.Len())
		}
	})
}
