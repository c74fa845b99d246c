package testutil

import (
	"bufio"
	"encoding/hex"
	"os"
	"path/filepath"
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

// Captures reads every capture (*.hex) in the tracer's testdata directory
// dir, one slice of records per connection sequence: the fuzz targets'
// seeds.
func Captures(tb testing.TB, dir string) [][][]byte {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.hex"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no captures in %s: %v", dir, err)
	}
	var out [][][]byte
	for _, name := range files {
		out = append(out, ReadHexLines(tb, name))
	}
	return out
}
