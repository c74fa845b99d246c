package testutil

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Timings collects the durations of contenders that a benchmark runs in turn
// within one run, so that they share the machine's state (caches, other
// load) and can be compared by their medians.
type Timings struct {
	names   []string // in the order first added
	samples map[string][]time.Duration
}

// Add records one run of name.
func (t *Timings) Add(name string, d time.Duration) {
	if t.samples == nil {
		t.samples = map[string][]time.Duration{}
	}
	if _, ok := t.samples[name]; !ok {
		t.names = append(t.names, name)
	}
	t.samples[name] = append(t.samples[name], d)
}

// Median returns the median run of name, 0 if it never ran.
func (t *Timings) Median(name string) time.Duration {
	s := slices.Clone(t.samples[name])
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

// Ratio is Median(name) / Median(peer).
func (t *Timings) Ratio(name, peer string) float64 {
	return float64(t.Median(name)) / float64(t.Median(peer))
}

// Column is an extra column for Table: a header and each contender's value.
type Column struct {
	Header string
	Value  func(name string) string
}

// Table formats runs, median, min and max of each contender, and any extra
// columns, as plain text that can be pasted into a README.
func (t *Timings) Table(extra ...Column) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-36s %5s %10s %10s %10s", "command", "runs", "median", "min", "max")
	for _, c := range extra {
		fmt.Fprintf(&b, " %10s", c.Header)
	}
	b.WriteByte('\n')
	for _, name := range t.names {
		s := t.samples[name]
		fmt.Fprintf(&b, "%-36s %5d %10s %10s %10s", name, len(s),
			ms(t.Median(name)), ms(slices.Min(s)), ms(slices.Max(s)))
		for _, c := range extra {
			fmt.Fprintf(&b, " %10s", c.Value(name))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// Samples returns the recorded runs of name, in the order they ran.
func (t *Timings) Samples(name string) []time.Duration { return t.samples[name] }
