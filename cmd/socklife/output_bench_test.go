package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkOutputBytes is what the bytes of trace's lines cost trace, apart
// from what they say: lines of the lengths of a host event's JSON (480
// bytes) and of one in a pod, whose container object takes it to 900,
// copied and written as trace writes them (formatted into a line, through a
// 64 KiB bufio.Writer) into a pipe that cat drains, 200,000 lines a run,
// the two lengths interleaved for 7 rounds. It reports this process's CPU
// per line (medians) and the ratio of the two. Set beside
// BenchmarkTraceChurn's CPU per event, it says how much of an in-pod
// event's extra cost no lookup can save: the container object's bytes.
//
//	go test -run '^$' -bench OutputBytes -benchtime 1x ./cmd/socklife
func BenchmarkOutputBytes(b *testing.B) {
	const lines, rounds = 200000, 7
	sizes := []int{480, 900}
	perLine := make([][]float64, len(sizes))
	for b.Loop() {
		for range rounds {
			for i, n := range sizes {
				perLine[i] = append(perLine[i], float64(writeLines(b, n, lines).Nanoseconds())/lines)
			}
		}
	}
	med := make([]float64, len(sizes))
	for i, n := range sizes {
		slices.Sort(perLine[i])
		med[i] = perLine[i][len(perLine[i])/2]
		b.ReportMetric(med[i], fmt.Sprintf("cpu-ns/line-of-%d", n))
	}
	b.ReportMetric(med[1]/med[0], "ratio")
	b.Logf("CPU per line, medians of %d runs of %d lines: %d bytes %.0f ns, %d bytes %.0f ns (%.2f ns a byte more)",
		rounds, lines, sizes[0], med[0], sizes[1], med[1], (med[1]-med[0])/float64(sizes[1]-sizes[0]))
}

// writeLines writes count lines of n bytes as trace does, into a pipe
// that cat drains, and returns the CPU this process spent.
func writeLines(tb testing.TB, n, count int) time.Duration {
	tb.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	cat := exec.Command("cat")
	cat.Stdin = r
	if err := cat.Start(); err != nil {
		tb.Fatal(err)
	}
	r.Close()
	text := append(bytes.Repeat([]byte("x"), n-1), '\n')
	out := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	before := cpuTime(tb)
	for range count {
		line = append(line[:0], text...)
		if _, err := out.Write(line); err != nil {
			tb.Fatal(err)
		}
	}
	if err := out.Flush(); err != nil {
		tb.Fatal(err)
	}
	cpu := cpuTime(tb) - before
	w.Close()
	if err := cat.Wait(); err != nil {
		tb.Fatal(err)
	}
	return cpu
}

// cpuTime is this process's user and system CPU so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
