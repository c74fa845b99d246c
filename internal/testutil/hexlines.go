package testutil

import (
	"bufio"
	"encoding/hex"
	"os"
	"testing"
)

// ReadHexLines reads a file of one hex-encoded record a line: how the
// tracer's tests keep ring-buffer records captured from the kernel.
func ReadHexLines(tb testing.TB, path string) [][]byte {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		b, err := hex.DecodeString(sc.Text())
		if err != nil {
			tb.Fatalf("%s: %v", path, err)
		}
		out = append(out, b)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}
