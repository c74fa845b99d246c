package record

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/testutil"
)

func line(i int) []byte {
	return fmt.Appendf(nil, `{"id":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", 80))
}

// A new file is private; an existing file of ours keeps its mode (socklife
// chmods only what it created) and its content until Start, so a run that
// fails to start loses nothing.
func TestCreateThenStart(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.ndjson")
	w, err := Create(Options{Path: fresh})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if st, _ := os.Stat(fresh); st.Mode().Perm() != 0o600 {
		t.Errorf("new file mode %v, want 0600", st.Mode().Perm())
	}
	path := filepath.Join(dir, "rec.ndjson")
	if err := os.WriteFile(path, []byte("old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	w, err = Create(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if data, _ := os.ReadFile(path); string(data) != "old\n" {
		t.Errorf("Create left %q, want the old content until Start", data)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(line(1)); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	data, _ := os.ReadFile(path)
	if st.Mode().Perm() != 0o640 || !bytes.Equal(data, line(1)) {
		t.Errorf("mode %v content %q; want 0640 kept and just the new record", st.Mode().Perm(), data)
	}
}

func TestCreateUnwritable(t *testing.T) {
	dir := t.TempDir()
	for _, path := range []string{filepath.Join(dir, "missing", "rec"), dir} {
		_, err := Create(Options{Path: path})
		if err == nil || !strings.HasPrefix(err.Error(), "creating "+path+": ") || strings.Count(err.Error(), path) != 1 {
			t.Errorf("Create(%s): %v; want one error naming the path once", path, err)
		}
	}
}

// Rotation cuts files at line boundaries, whether lines are written one
// by one or buffered.
func TestRotate(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		t.Run(fmt.Sprint("buffered=", buffered), func(t *testing.T) { testRotate(t, buffered) })
	}
}

func testRotate(t *testing.T, buffered bool) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rec")
	size := int64(len(line(0)))
	w, err := Create(Options{Path: path, MaxSize: 3 * size, MaxFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		write := w.Write
		if buffered {
			write = w.Add
		}
		if err := write(line(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Three records per file make files of 0-2, 3-5, 6-8 and 9; keeping
	// three drops the oldest.
	want := map[string]string{"rec": "9", "rec.1": "678", "rec.2": "345"}
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(want) {
		t.Errorf("files %v, want %v", ents, want)
	}
	for name, ids := range want {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for _, l := range strings.SplitAfter(string(data), "\n") {
			if l != "" {
				fmt.Fprint(&got, strings.TrimPrefix(strings.SplitN(l, ",", 2)[0], `{"id":`))
			}
		}
		st, _ := os.Stat(filepath.Join(dir, name))
		if got.String() != ids || st.Mode().Perm() != 0o600 {
			t.Errorf("%s holds records %s (mode %v), want %s (0600)", name, got.String(), st.Mode().Perm(), ids)
		}
	}
}

// A full disk stops the writer with ENOSPC and leaves only whole records,
// as many as fit, whether they came one by one or in a batch.
func TestDiskFull(t *testing.T) {
	testutil.RequireRoot(t)
	for _, buffered := range []bool{false, true} {
		t.Run(fmt.Sprint("buffered=", buffered), func(t *testing.T) { testDiskFull(t, buffered) })
	}
}

func testDiskFull(t *testing.T, buffered bool) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16k"); err != nil {
		t.Fatalf("mounting a small tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, 0) })
	path := filepath.Join(dir, "rec")
	w, err := Create(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		if buffered {
			werr = w.Add(line(i))
		} else {
			werr = w.Write(line(i))
		}
	}
	if werr == nil {
		werr = w.Flush()
	}
	if !errors.Is(werr, syscall.ENOSPC) || !strings.HasPrefix(werr.Error(), "writing "+path+": ") {
		t.Fatalf("error %v, want ENOSPC naming the file", werr)
	}
	if err := w.Write(line(0)); err != werr {
		t.Errorf("write after failure: %v, want the same error", err)
	}
	data, _ := os.ReadFile(path)
	var want []byte
	for i := range int(w.Records()) {
		want = append(want, line(i)...)
	}
	// A 16 KiB tmpfs holds 16 KiB of records, less at most one (and the
	// padding that keeps writes inside pages).
	if w.Records() == 0 || !bytes.Equal(unpad(data), want) || len(data) < 16<<10-2*len(line(999)) {
		t.Errorf("file has %d bytes, want the %d whole records written (%d bytes)", len(data), w.Records(), len(want))
	}
}

// unpad drops the spaces writePages puts at the end of a line.
func unpad(b []byte) []byte {
	var out []byte
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		if len(l) > 0 {
			out = append(append(out, bytes.TrimRight(l, " \n")...), '\n')
		}
	}
	return out
}

// writeLines writes n records, record i padded with pad(i) bytes, flushing
// at every flushEvery-th (as when the ring drains) and buffering the rest,
// then closes w; it returns the bytes written, padding aside.
func writeLines(t *testing.T, w *Writer, n, flushEvery int, pad func(i int) int) []byte {
	t.Helper()
	var want []byte
	for i := range n {
		l := fmt.Appendf(nil, `{"id":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", pad(i)))
		want = append(want, l...)
		write := w.Add
		if i%flushEvery == 0 {
			write = w.Write
		}
		if err := write(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// No write crosses a page of the file, so kill -9 (checked by the kernel
// between pages) can never leave half a line: every page ends a line, and
// the lines, trailing spaces aside, are the records in order.
func TestWritesStayInsidePages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec")
	w, err := Create(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	want := writeLines(t, w, 500, 7, func(i int) int { return i % 300 })
	data, _ := os.ReadFile(path)
	if !bytes.Equal(unpad(data), want) || w.Records() != 500 {
		t.Fatalf("file does not hold the 500 records in order (%d written)", w.Records())
	}
	for end := pageSize; end <= len(data); end += pageSize {
		if data[end-1] != '\n' {
			t.Errorf("page ending at %d ends inside a line: %q", end, data[end-40:end])
		}
	}
}

// Rotation keeps every file at or under --max-size, padding included, and
// loses no record: lines of a record's usual sizes (300 to 900 bytes),
// flushed now and then as when the ring drains, rotated at sizes that are
// and are not whole pages (where padding would push a file over).
func TestRotateUnderMaxSize(t *testing.T) {
	for _, maxSize := range []int{64 << 10, 4600, 10000} {
		t.Run(strconv.Itoa(maxSize), func(t *testing.T) { testRotateUnderMaxSize(t, maxSize) })
	}
}

func testRotateUnderMaxSize(t *testing.T, maxSize int) {
	n := 20 * maxSize / 600 // about 20 files
	dir := t.TempDir()
	path := filepath.Join(dir, "rec")
	w, err := Create(Options{Path: path, MaxSize: int64(maxSize), MaxFiles: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := writeLines(t, w, n, 5, func(i int) int { return 300 + (i*379)%600 })
	var got []byte
	var files, total int
	for i := 99; i >= 0; i-- { // oldest first
		name := path
		if i > 0 {
			name = fmt.Sprintf("%s.%d", path, i)
		}
		data, err := os.ReadFile(name)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		files++
		total += len(data)
		if len(data) > maxSize {
			t.Errorf("%s: %d bytes, over --max-size %d", name, len(data), maxSize)
		}
		got = append(got, unpad(data)...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the %d files do not hold the %d records in order", files, n)
	}
	t.Logf("%d files; padding %.1f%% of %d bytes", files, 100*float64(total-len(want))/float64(total), total)
}
