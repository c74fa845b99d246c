package record

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/outfile"
	"github.com/socklife/socklife/internal/testutil"
)

// What cannot hold records written in place is refused by Create, before
// anything starts, with the reason, and left as it was; what Create
// refuses without Overwrite is named as refused.
func TestCreateRefuses(t *testing.T) {
	testutil.RequireRoot(t) // /proc/version opens for writing as root only
	dir := t.TempDir()
	link, target := testutil.PlantLink(t, dir, "keep\n", -1)
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader, so that opening the FIFO for writing succeeds and the
	// test write is what fails.
	reader, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	for _, c := range []struct {
		opts Options
		look string // what must stay as it was
		want error
	}{
		{Options{Path: link}, target, outfile.ErrRefused},
		{Options{Path: "/dev/null"}, "/dev/null", outfile.ErrRefused},
		{Options{Path: "/dev/full"}, "/dev/full", outfile.ErrRefused},
		{Options{Path: fifo}, fifo, outfile.ErrRefused},
		{Options{Path: "/proc/version"}, "/proc/version", syscall.ESPIPE}, // a root-owned regular file
		{Options{Path: "/dev/full", Overwrite: true}, "/dev/full", syscall.ENOSPC},
		{Options{Path: fifo, Overwrite: true}, fifo, syscall.ESPIPE},
		{Options{Path: "/dev/null", Overwrite: true, MaxSize: 1 << 20}, "/dev/null", nil},
	} {
		before := testutil.FileFacts(t, c.look)
		w, err := Create(c.opts)
		if err == nil {
			w.Close()
		}
		if err == nil || c.want != nil && !errors.Is(err, c.want) || !strings.HasPrefix(err.Error(), "creating "+c.opts.Path+": ") {
			t.Errorf("%+v: %v; want an error naming the path, for %v", c.opts, err, c.want)
		}
		if after := testutil.FileFacts(t, c.look); after != before {
			t.Errorf("%+v changed %s: %s, was %s", c.opts, c.look, after, before)
		}
	}
	// Asked to, /dev/null takes records and keeps its mode.
	w, err := Create(Options{Path: "/dev/null", Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	before := testutil.FileFacts(t, "/dev/null")
	if err := errors.Join(w.Start(), w.Write(line(1)), w.Close()); err != nil {
		t.Fatal(err)
	}
	if after := testutil.FileFacts(t, "/dev/null"); after != before || !strings.Contains(after, "crw-rw-rw-") {
		t.Errorf("/dev/null is now %s, was %s", after, before)
	}
}

// Rotation shifts the files that exist, not every name up to --max-files:
// with two billion allowed, three rotations take less time than a thousand
// renames of missing files (what rotating used to cost per name), measured
// here on the same machine.
func TestRotateManyFilesAllowed(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	for i := range 1000 {
		os.Rename(filepath.Join(dir, "missing"+strconv.Itoa(i)), filepath.Join(dir, "missing"))
	}
	budget := time.Since(start)
	path := filepath.Join(dir, "rec")
	w, err := Create(Options{Path: path, MaxSize: int64(len(line(0))), MaxFiles: 2_000_000_000})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		for i := range 4 { // the file holds one: each line after the first rotates
			if err := w.Write(line(i)); err != nil {
				t.Error(err)
			}
		}
		done <- time.Since(start)
	}()
	select {
	case took := <-done:
		if took > budget {
			t.Errorf("3 rotations took %v, over the %v of 1000 renames", took, budget)
		}
	case <-time.After(100 * budget):
		t.Fatalf("3 rotations still running after %v (1000 renames took %v)", 100*budget, budget)
	}
	w.Close()
	for i, name := range []string{"rec.3", "rec.2", "rec.1", "rec"} {
		if data, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(data, line(i)) {
			t.Errorf("%s holds %q (%v), want record %d", name, data, err, i)
		}
	}
}

// `socklife record > file`: a stdout that is a regular file gets the same
// page-bounded writes as -o FILE, from where its offset was, and the
// offset follows the records so that a `2>&1` line lands after them.
func TestStdoutRegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const head = "started\n"
	f.WriteString(head)
	w, err := Create(Options{Path: "-", Stdout: f, MaxSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	want := writeLines(t, w, 500, 7, func(i int) int { return i % 300 })
	f.WriteString("a warning\n")
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, []byte(head)) || !bytes.HasSuffix(data, []byte("\na warning\n")) {
		t.Fatalf("file starts %q and ends %q", data[:min(len(data), 20)], data[max(0, len(data)-20):])
	}
	recs := data[len(head) : len(data)-len("a warning\n")]
	if !bytes.Equal(unpad(recs), want) || w.Records() != 500 {
		t.Fatalf("stdout does not hold the 500 records in order (%d written)", w.Records())
	}
	for end := pageSize; end <= len(head)+len(recs); end += pageSize {
		if data[end-1] != '\n' {
			t.Errorf("page ending at %d ends inside a line: %q", end, data[end-40:end])
		}
	}
}
