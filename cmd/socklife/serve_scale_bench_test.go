package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/testutil"
)

// Scale: what a scrape of `socklife serve` costs on a busy host, 100,000
// sockets (the established connections of testutil.BenchConns) and 1,000
// listeners, the picture of a large node.
const (
	scaleListeners = 1000
	scaleScrapes   = 15
	// scaleCollectEvery is serve's --collect-interval here, and
	// scaleScrapeGap the pause between two timed scrapes: longer, so that
	// each timed scrape makes a collection of its own, while ten scrapes
	// fired at once fall within one interval.
	scaleCollectEvery = 500 * time.Millisecond
	scaleScrapeGap    = scaleCollectEvery + 100*time.Millisecond
)

// BenchmarkServeScale starts `socklife serve` on a host holding 100,000
// sockets and 1,000 listeners, then times scrapes of /metrics one after
// another (each a fresh collection), fires ten at once, and reads serve's
// RSS. It reports the median scrape (HTTP request to last byte), the
// median collection (serve's own socklife_scrape_collection_seconds), the
// body's size and series, and the RSS:
//
//	go test -v -run '^$' -bench ServeScale -benchtime 1x ./cmd/socklife
//
// SOCKLIFE_BENCH_SCALE_SOCKETS sets the sockets (1000000 for the RSS at a
// million: 500,000 connections over 56 holders), SOCKLIFE_BENCH_SCALE_LISTENERS
// the listeners, SOCKLIFE_BENCH_SCRAPES the timed scrapes. It fails on what
// is not timing: a scrape that misses the sockets or listeners, a body
// promtool rejects, ten concurrent scrapes that cost more than one
// collection.
func BenchmarkServeScale(b *testing.B) {
	testutil.RequireRoot(b)
	sockets := testutil.EnvInt(b, "SOCKLIFE_BENCH_SCALE_SOCKETS", 2*testutil.BenchConns)
	listeners := testutil.EnvInt(b, "SOCKLIFE_BENCH_SCALE_LISTENERS", scaleListeners)
	scrapes := testutil.EnvInt(b, "SOCKLIFE_BENCH_SCRAPES", scaleScrapes)
	bin := buildSocklife(b)
	for range listeners {
		testutil.RawListener(b, [4]byte{127, 0, 0, 1}, 0, 128)
	}
	netns, established := openScaleConns(b, sockets/2)
	p, base := startServeBench(b, bin, benchOutDir(b), sinkFile, "", []string{"--collect-interval", scaleCollectEvery.String()})

	var first string
	testutil.WaitFor(b, time.Minute, "serve to answer", func() bool {
		var err error
		first, err = httpGet(base + "/metrics")
		return err == nil
	})
	checkScaleBody(b, first, 2*established, listeners)

	var scrape testutil.Timings
	var collect []float64
	seen := map[string]bool{}
	var body string
	cpuBefore := p.cpu(b)
	for range scrapes {
		time.Sleep(scaleScrapeGap) // past the interval: a collection of its own
		start := time.Now()
		var err error
		if body, err = httpGet(base + "/metrics"); err != nil {
			b.Fatal(err)
		}
		scrape.Add("scrape", time.Since(start))
		// the peer, interleaved: ss listing the namespace holding the
		// sockets, the one sock_diag walk a scrape cannot do without
		start = time.Now()
		ss := exec.Command("nsenter", "--net="+netns, "ss", "-tan")
		if out, err := ss.CombinedOutput(); err != nil {
			b.Fatalf("ss -tan: %v: %s", err, out)
		}
		scrape.Add("ss", time.Since(start))
		line := collectionLine(body)
		if seen[line] {
			b.Errorf("two timed scrapes show one collection (%q): the timings are not each a collection's", line)
		}
		seen[line] = true
		collect = append(collect, collectionSeconds(b, line)*1000)
	}
	cpuPerScrape := (p.cpu(b) - cpuBefore) / time.Duration(scrapes)

	time.Sleep(scaleScrapeGap) // the ten start a collection of their own
	cpuBefore = p.cpu(b)
	lines := concurrentScrapes(b, base, 10)
	cpuTen := p.cpu(b) - cpuBefore
	for _, l := range lines {
		if l != lines[0] {
			b.Errorf("ten concurrent scrapes saw collections %q and %q: more than one collection", lines[0], l)
			break
		}
	}
	if seen[lines[0]] {
		b.Errorf("ten concurrent scrapes saw an earlier collection (%q), not one of their own", lines[0])
	}
	rss, hwm := procMemKiB(b, p.cmd.Process.Pid)

	series := countSeries(body)
	b.ReportMetric(float64(scrape.Median("scrape"))/1e6, "scrape_ms")
	b.ReportMetric(churnMedian(collect), "collect_ms")
	b.ReportMetric(float64(scrape.Median("ss"))/1e6, "ss_ms")
	b.ReportMetric(float64(len(body)), "body_bytes")
	b.ReportMetric(float64(series), "series")
	b.ReportMetric(float64(rss)/1024, "rss_MiB")
	var t strings.Builder
	fmt.Fprintf(&t, "%10s %10s %10s %10s %10s %10s %10s %12s %12s %10s %10s\n", "sockets", "listeners", "scrape", "collect", "ss -tan", "scrape/ss",
		"body", "series", "cpu/scrape", "cpu 10x", "RSS")
	fmt.Fprintf(&t, "%10d %10d %7.1f ms %7.1f ms %7.1f ms %10.2f %6.0f KiB %12d %9.0f ms %7.0f ms %6.0f MiB\n",
		2*established, listeners, float64(scrape.Median("scrape"))/1e6, churnMedian(collect), float64(scrape.Median("ss"))/1e6,
		scrape.Ratio("scrape", "ss"), float64(len(body))/1024, series,
		float64(cpuPerScrape)/1e6, float64(cpuTen)/1e6, float64(rss)/1024)
	b.Logf("socklife serve, medians of %d scrapes %v apart (--collect-interval %v), each followed by `ss -tan` in the sockets' namespace; cpu 10x: ten scrapes at once; RSS after them (peak %.0f MiB):\n%s",
		scrapes, scaleScrapeGap, scaleCollectEvery, float64(hwm)/1024, t.String())
}

// scaleConnsAtOnce is how many connections one OpenConns opens: 100,000
// (12 holders) are established well within its deadline here, 500,000
// are not.
const scaleConnsAtOnce = 100000

// openScaleConns opens n loopback connections in a network namespace of
// their own, as a pod's are, and returns the namespace's path and n. In the host's namespace a
// million sockets would need half a million conntrack entries (the host's
// nat rules load conntrack, and nf_conntrack_max is 262,144 here): past
// that the kernel drops every new connection's SYN, the host's included.
// A namespace without rules has no conntrack.
func openScaleConns(b *testing.B, n int) (netns string, opened int) {
	b.Helper()
	netns = testutil.NamedNetns(b)
	testutil.InNetns(b, netns, func() {
		// the holders are forked from this thread, in the namespace
		for left := n; left > 0; left -= scaleConnsAtOnce {
			testutil.OpenConns(b, min(left, scaleConnsAtOnce))
		}
	})
	return netns, n
}

// checkScaleBody checks that a scrape covers what the benchmark made, so
// that its timings are those of a scrape at that scale: at least sockets
// ESTABLISHED sockets in some namespace, a series for each listener, and
// an exposition promtool accepts (when installed).
func checkScaleBody(b *testing.B, body string, sockets, listeners int) {
	b.Helper()
	established, limits := 0.0, 0
	for l := range strings.Lines(body) {
		switch {
		case strings.HasPrefix(l, "socklife_listener_accept_queue_limit{"):
			limits++
		case strings.HasPrefix(l, "socklife_tcp_sockets{") && strings.Contains(l, `state="ESTABLISHED"`):
			f := strings.Fields(l)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				b.Fatalf("unparsable %q", l)
			}
			established = max(established, v)
		}
	}
	if established < float64(sockets) {
		b.Errorf("the scrape shows %.0f ESTABLISHED sockets, want at least the %d the benchmark holds", established, sockets)
	}
	if limits < listeners {
		b.Errorf("the scrape shows %d listeners, want at least the %d the benchmark holds", limits, listeners)
	}
	check := exec.Command(testutil.ServerBinary(b, "promtool"), "check", "metrics")
	check.Stdin = strings.NewReader(body)
	if out, err := check.CombinedOutput(); err != nil || len(out) > 0 {
		b.Errorf("promtool check metrics: %v\n%.2000s", err, out)
	}
}

// concurrentScrapes fires n scrapes of base at once and returns the
// socklife_scrape_collection_seconds line of each.
func concurrentScrapes(b *testing.B, base string, n int) []string {
	b.Helper()
	lines := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range lines {
		wg.Go(func() {
			<-start
			body, err := httpGet(base + "/metrics")
			if err != nil {
				b.Error(err)
			}
			lines[i] = collectionLine(body)
		})
	}
	close(start)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return lines
}

// collectionSeconds is the value of a socklife_scrape_collection_seconds line.
func collectionSeconds(b *testing.B, line string) float64 {
	b.Helper()
	v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, "socklife_scrape_collection_seconds ")), 64)
	if err != nil {
		b.Fatalf("the scrape's collection line %q: %v", line, err)
	}
	return v
}

// countSeries counts the samples of an exposition: its lines that are not
// comments.
func countSeries(body string) int {
	n := 0
	for l := range strings.Lines(body) {
		if l != "\n" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}

// procMemKiB reads a process's resident set now (VmRSS) and at its peak
// (VmHWM), in KiB.
func procMemKiB(b *testing.B, pid int) (rss, hwm int64) {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &rss
		case "VmHWM":
			dst = &hwm
		default:
			continue
		}
		if *dst, err = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err != nil {
			b.Fatalf("/proc/%d/status: %s: %v", pid, sc.Text(), err)
		}
	}
	if rss == 0 {
		b.Fatalf("/proc/%d/status has no VmRSS", pid)
	}
	return rss, hwm
}
