package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// churnSummary is one configuration's medians over its runs.
type churnSummary struct {
	name        string
	rate        float64 // connections/s
	onOff       float64 // rate / the "off" rate of the same round
	eventsPerS  float64 // events written / churn time
	kept        float64 // events about the churn written / events it made
	lost        int64   // over all runs
	cpuPerEvent time.Duration
	bpfPerRun   time.Duration
	progs       string // per program: name ns/run, from the middle run
}

func summarizeChurn(name string, runs, off []churnSample, expected int64, progs []progRun) churnSummary {
	s := churnSummary{name: name}
	var rates, ratios, evps, kept, cpu []float64
	for i, r := range runs {
		rates = append(rates, r.rate)
		ratios = append(ratios, r.rate/off[i].rate)
		s.lost += r.lost
		if name == "off" {
			continue
		}
		evps = append(evps, float64(r.written)/r.elapsed.Seconds())
		kept = append(kept, float64(r.ours)/float64(expected))
		if r.written > 0 {
			cpu = append(cpu, float64(r.cpu)/float64(r.written))
		}
	}
	s.rate, s.onOff = churnMedian(rates), churnMedian(ratios)
	s.eventsPerS, s.kept = churnMedian(evps), churnMedian(kept)
	s.cpuPerEvent = time.Duration(churnMedian(cpu))
	var rt time.Duration
	var n uint64
	for _, p := range progs {
		rt, n = rt+p.runtime, n+p.runs
	}
	if n > 0 {
		s.bpfPerRun = rt / time.Duration(n)
	}
	s.progs = progTable(progs)
	return s
}

func progTable(progs []progRun) string {
	var parts []string
	for _, p := range progs {
		if p.runs > 0 {
			parts = append(parts, fmt.Sprintf("%s %d ns/run ×%d", p.name, int64(p.runtime)/int64(p.runs), p.runs))
		}
	}
	return strings.Join(parts, ", ")
}

// reportChurn turns the runs into benchmark metrics and a README table.
func reportChurn(b *testing.B, conns int, sink sinkKind, tracers []churnTracer, samples map[string][]churnSample, perConn map[string]int64, progs map[string][]progRun) {
	off := samples["off"]
	var sums []churnSummary
	for _, tr := range tracers {
		s := summarizeChurn(tr.name, samples[tr.name], off, perConn[tr.name]*int64(conns), progs[tr.name])
		sums = append(sums, s)
		b.ReportMetric(s.rate, tr.name+"-conns/s")
		if tr.name == "off" {
			continue
		}
		b.ReportMetric(s.onOff, tr.name+"-on/off")
		b.ReportMetric(s.eventsPerS, tr.name+"-events/s")
		b.ReportMetric(float64(s.lost), tr.name+"-lost")
		b.ReportMetric(float64(s.cpuPerEvent), tr.name+"-cpu-ns/event")
		b.ReportMetric(float64(s.bpfPerRun), tr.name+"-bpf-ns/run")
	}
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "loopback churn, %d connections per run (connect, 1 byte each way, close), %d runs each, interleaved; medians; output to a %s\n",
		conns, len(off), map[sinkKind]string{sinkPipe: "pipe and a reader", sinkFile: "tmpfs file"}[sink])
	fmt.Fprintf(&tbl, "%-9s %10s %7s %11s %8s %9s %10s %10s\n",
		"tracer", "conns/s", "on/off", "events/s", "kept", "lost(all)", "CPU/event", "BPF/run")
	for _, s := range sums {
		if s.name == "off" {
			fmt.Fprintf(&tbl, "%-9s %10.0f %7.2f %11s %8s %9s %10s %10s\n", s.name, s.rate, s.onOff, "-", "-", "-", "-", "-")
			continue
		}
		fmt.Fprintf(&tbl, "%-9s %10.0f %7.2f %11.0f %7.2f%% %9d %10v %10v\n",
			s.name, s.rate, s.onOff, s.eventsPerS, 100*s.kept, s.lost, s.cpuPerEvent, s.bpfPerRun)
	}
	for _, s := range sums {
		if s.progs != "" {
			fmt.Fprintf(&tbl, "%s programs (one more run, BPF statistics on): %s\n", s.name, s.progs)
		}
	}
	var counts []string
	for _, tr := range tracers[1:] {
		counts = append(counts, fmt.Sprintf("%s %d", tr.name, perConn[tr.name]))
	}
	fmt.Fprintf(&tbl, "events per connection (counted on the churn's port alone): %s\n", strings.Join(counts, ", "))
	if i, j := summaryIndex(sums, "socklife"), summaryIndex(sums, "bpftrace"); i >= 0 && j >= 0 && sums[j].cpuPerEvent > 0 {
		ratio := float64(sums[i].cpuPerEvent) / float64(sums[j].cpuPerEvent)
		b.ReportMetric(ratio, "cpu-socklife/bpftrace")
		fmt.Fprintf(&tbl, "socklife/bpftrace CPU per event: %.2f\n", ratio)
	}
	for _, tr := range tracers {
		fmt.Fprintf(&tbl, "%s conns/s by run:", tr.name)
		for _, r := range samples[tr.name] {
			fmt.Fprintf(&tbl, " %.0f", r.rate)
		}
		tbl.WriteString("\n")
	}
	b.Logf("\n%s", tbl.String())
}

func summaryIndex(sums []churnSummary, name string) int {
	return slices.IndexFunc(sums, func(s churnSummary) bool { return s.name == name })
}

// churnMedian of xs (0 for none); xs is sorted in place.
func churnMedian(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}

// churnQuartiles are the first and third quartiles of xs (sorted in
// place), each the median of its half: the middle half of the rounds lies
// between them.
func churnQuartiles(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	slices.Sort(xs)
	n := len(xs)
	return churnMedian(slices.Clone(xs[:n/2+n%2])), churnMedian(slices.Clone(xs[n/2:]))
}

// The benchmark's arithmetic and parsing, which a wrong number in the README
// would come from.
func TestChurnBenchSummary(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := churnMedian(tc.xs); got != tc.want {
			t.Errorf("churnMedian(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
	for _, tc := range []struct {
		xs     []float64
		lo, hi float64
	}{{nil, 0, 0}, {[]float64{3}, 3, 3}, {[]float64{4, 1, 3, 2}, 1.5, 3.5}, {[]float64{7, 1, 6, 2, 5, 3, 4}, 2.5, 5.5}} {
		if lo, hi := churnQuartiles(tc.xs); lo != tc.lo || hi != tc.hi {
			t.Errorf("churnQuartiles(%v) = %v, %v, want %v, %v", tc.xs, lo, hi, tc.lo, tc.hi)
		}
	}
	// Ratios pair each run with the "off" run of its own round.
	off := []churnSample{{rate: 100}, {rate: 50}, {rate: 200}}
	on := []churnSample{
		{rate: 90, written: 1000, ours: 900, elapsed: time.Second, cpu: time.Millisecond,
			bpf: []progRun{{"a", 800 * time.Microsecond, 1000}, {"b", 200 * time.Microsecond, 0}}},
		{rate: 50, written: 2000, ours: 1000, elapsed: time.Second, cpu: 4 * time.Millisecond, lost: 3},
		{rate: 100, written: 500, ours: 1000, elapsed: time.Second, cpu: 2 * time.Millisecond, lost: 4},
	}
	got := summarizeChurn("t", on, off, 1000, on[0].bpf)
	want := churnSummary{name: "t", rate: 90, onOff: 0.9, eventsPerS: 1000, kept: 1, lost: 7,
		cpuPerEvent: 2 * time.Microsecond, bpfPerRun: time.Microsecond}
	got.progs = ""
	if got != want {
		t.Errorf("summarizeChurn:\n got %+v\nwant %+v", got, want)
	}
	if p := progTable(on[0].bpf); p != "a 800 ns/run ×1000" {
		t.Errorf("progTable = %q: want only the program that ran", p)
	}
}

func TestChurnBenchParsesTracerOutput(t *testing.T) {
	for _, tc := range []struct {
		re   *regexp.Regexp
		line string
		want []string // submatches, nil for no match
	}{
		{socklifeSummary, "socklife: 330000 events, 12 lost", []string{"330000", "12"}},
		{socklifeSummary, "socklife: 330000 events, 12 lost (ring full 10, recursion 2)\nsocklife: warning: 12 events lost: the trace has gaps\n", []string{"330000", "12"}},
		{socklifeSummary, "warning: x\nsocklife: 5 events, 0 lost\n", []string{"5", "0"}},
		{socklifeSummary, "socklife: trace: not built yet", nil},
		{bpftraceLost, "Lost 4345 events", []string{"4345"}},
		{bpftraceLost, "123 456 curl 127.0.0.1:0 127.0.0.1:80 7 2", nil},
	} {
		m := tc.re.FindStringSubmatch(tc.line)
		if m != nil {
			m = m[1:]
		}
		if !slices.Equal(m, tc.want) {
			t.Errorf("%v on %q: %q, want %q", tc.re, tc.line, m, tc.want)
		}
	}
}

func TestCountOutput(t *testing.T) {
	out := strings.Join([]string{
		"Attaching 2 probes...",
		"bench-ready",
		"123 456 curl 127.0.0.1:80 127.0.0.1:5000 7 2",
		"124 456 curl 127.0.0.1:81 127.0.0.1:5001 7 2",
		"Lost 12 events",
		`{"kind":"state","local":"127.0.0.1:80"}`,
		"Lost 3 events",
		"",
	}, "\n")
	var seen int
	got, err := countOutput(strings.NewReader(out), []byte(":80 "), func([]byte) { seen++ })
	if err != nil {
		t.Fatal(err)
	}
	if want := (outputCounts{lines: 3, marked: 1, lost: 15}); got != want || seen != 7 {
		t.Errorf("countOutput = %+v after %d lines, want %+v after 7", got, seen, want)
	}
}
