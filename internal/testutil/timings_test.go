package testutil

import (
	"strings"
	"testing"
	"time"
)

func TestTimingsMedian(t *testing.T) {
	for _, tc := range []struct {
		runs []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{5}, 5},
		{[]time.Duration{9, 1, 5}, 5},
		{[]time.Duration{8, 2, 4, 100}, 6},
	} {
		var tm Timings
		for _, d := range tc.runs {
			tm.Add("x", d)
		}
		if got := tm.Median("x"); got != tc.want {
			t.Errorf("median of %v = %v, want %v", tc.runs, got, tc.want)
		}
	}
}

func TestTimingsRatioAndTable(t *testing.T) {
	var tm Timings
	for _, d := range []time.Duration{30, 10, 20} {
		tm.Add("socklife", d*time.Millisecond)
		tm.Add("ss", 2*d*time.Millisecond)
	}
	if got := tm.Ratio("socklife", "ss"); got != 0.5 {
		t.Errorf("ratio = %v, want 0.5", got)
	}
	table := tm.Table(Column{"note", func(name string) string { return "<" + name + ">" }})
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "socklife ") || !strings.Contains(lines[2], "40.0 ms") ||
		!strings.HasSuffix(lines[0], "note") || !strings.HasSuffix(lines[2], "<ss>") {
		t.Errorf("table rows not in order added, median or extra column wrong:\n%s", table)
	}
}
