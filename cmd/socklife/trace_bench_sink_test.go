package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// Where a benchmarked tracer's output goes. A tmpfs file costs this VM
// about 2 ns a byte (dd to /dev/shm: 474 MB/s), which is the hypervisor
// handing back fresh pages (free page reporting returns freed memory to the
// host), not the tracer's work; a pipe to a reader, the usual `| jq`, costs
// a copy through pages the pipe reuses.
type sinkKind string

const (
	sinkPipe sinkKind = "pipe" // to a reader process that counts and discards
	sinkFile sinkKind = "file" // to a tmpfs file, counted afterwards
)

func benchSink(tb testing.TB) sinkKind {
	switch s := sinkKind(os.Getenv("SOCKLIFE_BENCH_SINK")); s {
	case "", sinkPipe:
		return sinkPipe
	case sinkFile:
		return sinkFile
	default:
		tb.Fatalf("SOCKLIFE_BENCH_SINK=%q: want pipe or file", s)
		return ""
	}
}

// outputCounts is what a tracer wrote: event lines (starting with '{' for
// JSON or a digit for bpftrace), those holding the churn's port mark, and
// the events bpftrace reported lost in its output.
type outputCounts struct {
	lines, marked, lost int64
}

// bpftraceLost is how bpftrace reports a perf buffer overrun: in its output.
var bpftraceLost = regexp.MustCompile(`^Lost (\d+) events$`)

// countOutput counts r's lines; onLine, if set, sees each.
func countOutput(r io.Reader, mark []byte, onLine func([]byte)) (outputCounts, error) {
	var c outputCounts
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 256<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) > 0 && (line[0] == '{' || line[0] >= '0' && line[0] <= '9') {
			c.lines++
		}
		if len(mark) > 0 && bytes.Contains(line, mark) {
			c.marked++
		}
		// the regexp only where it can match: on every line it was most
		// of the sink's time
		if len(line) > 0 && line[0] == 'L' {
			if m := bpftraceLost.FindSubmatch(line); m != nil {
				n, _ := strconv.ParseInt(string(m[1]), 10, 64)
				c.lost += n
			}
		}
		if onLine != nil {
			onLine(line)
		}
	}
	return c, sc.Err()
}

func countFile(tb testing.TB, path, mark string) outputCounts {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	c, err := countOutput(f, []byte(mark), nil)
	if err != nil {
		tb.Fatalf("reading %s: %v", path, err)
	}
	return c
}

// The sink: this test binary run as the reader at the end of a tracer's
// pipe (TestMain), counting as it reads, then writing the counts.
const (
	sinkCountsEnv = "SOCKLIFE_BENCH_SINK_COUNTS" // where the counts go at EOF
	sinkMarkEnv   = "SOCKLIFE_BENCH_SINK_MARK"
	sinkReadyEnv  = "SOCKLIFE_BENCH_SINK_READY" // a line to announce in COUNTS.ready
)

func runSink(countsPath string) int {
	ready := []byte(os.Getenv(sinkReadyEnv))
	seen := len(ready) == 0
	c, err := countOutput(os.Stdin, []byte(os.Getenv(sinkMarkEnv)), func(line []byte) {
		if !seen && bytes.Equal(line, ready) {
			seen = true
			os.WriteFile(countsPath+".ready", nil, 0o600)
		}
	})
	if err == nil {
		err = os.WriteFile(countsPath, fmt.Appendf(nil, "%d %d %d\n", c.lines, c.marked, c.lost), 0o600)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench sink:", err)
		return 1
	}
	return 0
}

func readSinkCounts(tb testing.TB, path string) outputCounts {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("the sink's counts: %v", err)
	}
	var c outputCounts
	if _, err := fmt.Sscanf(string(raw), "%d %d %d", &c.lines, &c.marked, &c.lost); err != nil {
		tb.Fatalf("the sink's counts %q: %v", raw, err)
	}
	return c
}
