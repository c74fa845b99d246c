// Package record writes `socklife record`'s output (lines render.AppendRecord
// makes): NDJSON in files created mode 0600 (opened as package outfile
// says) and rotated by size, where every write() holds only whole lines (a
// killed writer never leaves half a record, a full disk never keeps one),
// in a file or in a stdout that is a regular file.
package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/outfile"
)

// Options say where records go.
type Options struct {
	// Path is the file to write; "-" writes to Stdout instead.
	Path   string
	Stdout io.Writer
	// Overwrite writes Path even where outfile.Open would refuse it: a
	// symbolic link, a device, another user's file. It never rotates
	// what is not a regular file.
	Overwrite bool
	// MaxSize rotates the file before a record, or the padding that keeps
	// records inside pages, would take it past this many bytes; 0 never
	// rotates. Only a record longer than MaxSize makes a larger file
	// (holding that record alone).
	MaxSize int64
	// MaxFiles is how many files rotation keeps, the current one included:
	// FILE, FILE.1 (the newest full one) ... FILE.<MaxFiles-1>. 0 means 5.
	MaxFiles int
}

// Writer writes whole lines: every write() it makes holds only complete
// records, so a process killed at any moment leaves only complete records
// behind, and a write that fails half way (disk full) is cut back off the
// file. Add buffers a line; Flush writes what is buffered, in writes that
// never cross a page of the file (see writePages).
type Writer struct {
	opts     Options
	f        *os.File // written with positioned writes: a file, or stdout if it is a regular file
	stdout   bool     // f is stdout: not ours to close, rotate or name
	empty    bool     // f must be emptied by Start (an existing regular file)
	out      io.Writer
	buf      []byte
	buffered uint64        // records in buf
	size     int64         // bytes in the current file, all of them whole lines
	n        atomic.Uint64 // records written; read from any goroutine
	flushing atomic.Int64  // when the Flush under way began (UnixNano); 0: none
	err      error
}

// flushAt is the buffer size at which Add writes without waiting for Flush.
const flushAt = 64 << 10

// Create opens the output and checks it can take the writes that keep
// records whole, so that a path that will not do is found before anything
// else starts. It truncates nothing: Start does, once the caller knows the
// run will start.
func Create(opts Options) (*Writer, error) {
	if opts.MaxSize < 0 || opts.MaxFiles < 0 {
		return nil, errors.New("negative rotation limits")
	}
	if opts.MaxFiles == 0 {
		opts.MaxFiles = 5
	}
	w := &Writer{opts: opts}
	if opts.Path == "-" {
		w.out = opts.Stdout
		w.useStdoutFile()
		return w, nil
	}
	f, err := outfile.Open(opts.Path, 0o600, opts.Overwrite)
	if err == nil {
		err = probe(f, opts.MaxSize)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("creating %s: %w", opts.Path, err)
	}
	w.f, w.out, w.empty = f.File, f.File, f.Regular && !f.Created
	return w, nil
}

// probe checks that f takes positioned writes (a pipe, /dev/full or a
// /proc file does not) with a write of nothing, and that rotation renames
// only a regular file.
func probe(f *outfile.File, maxSize int64) error {
	if _, err := unix.Pwrite(int(f.Fd()), nil, 0); err != nil {
		return fmt.Errorf("cannot be written in place (which keeps records whole): %w", err)
	}
	if !f.Regular && maxSize > 0 {
		return errors.New("not a regular file, which --max-size would rename")
	}
	return nil
}

// useStdoutFile writes a stdout that is a regular file (`record > file`)
// the way it writes -o FILE, from its current offset. Opened for
// appending, it is written as a stream: pwrite would append too, and the
// padding could not rewrite the last line in place.
func (w *Writer) useStdoutFile() {
	f, ok := w.opts.Stdout.(*os.File)
	if !ok {
		return
	}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	if fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0); err != nil || fl&unix.O_APPEND != 0 {
		return
	}
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return
	}
	w.f, w.stdout, w.size = f, true, off
}

// Start empties an existing file, once nothing else can fail before
// recording starts: a run that never starts leaves the file as it was.
func (w *Writer) Start() error {
	if !w.empty {
		return nil
	}
	w.empty = false
	if err := w.f.Truncate(0); err != nil {
		return fmt.Errorf("emptying %s: %w", w.opts.Path, pathless(err))
	}
	return nil
}

// pathless drops the path from an *os.PathError: callers say it once.
func pathless(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Add buffers one line (ending in '\n'), writing the buffer when it is
// full. After an error the Writer is spent: every later call returns it.
func (w *Writer) Add(line []byte) error {
	if w.err != nil {
		return w.err
	}
	w.buf = append(w.buf, line...)
	w.buffered++
	if len(w.buf) >= flushAt {
		return w.Flush()
	}
	return nil
}

// Write adds one line and flushes it.
func (w *Writer) Write(line []byte) error {
	if err := w.Add(line); err != nil {
		return err
	}
	return w.Flush()
}

// Flush writes the buffered lines. If that fails (a full disk), it cuts the
// partial line off and writes the rest one line at a time, to keep every
// record that fits.
func (w *Writer) Flush() error {
	if w.err != nil || len(w.buf) == 0 {
		return w.err
	}
	w.flushing.Store(time.Now().UnixNano())
	defer w.flushing.Store(0)
	done, err := w.write(w.buf)
	if err != nil && w.f != nil {
		err = w.rewind()
		for rest := w.buf[done:]; err == nil && len(rest) > 0; {
			end := bytes.IndexByte(rest, '\n') + 1
			_, err = w.write(rest[:end])
			rest = rest[end:]
		}
	}
	w.buf, w.buffered = w.buf[:0], 0
	if err != nil {
		w.err = w.fail(err)
	}
	return w.err
}

// write writes b, whole lines, and returns how many of its bytes are in
// the render.
func (w *Writer) write(b []byte) (int, error) {
	if w.stdout {
		// pwrite leaves the offset where it was: move it past the
		// records, where a `2>&1` stderr line has to go.
		n, err := w.writePages(b)
		if _, serr := w.f.Seek(w.size, io.SeekStart); err == nil {
			err = serr
		}
		return n, err
	}
	if w.f != nil {
		return w.writePages(b)
	}
	written, err := w.out.Write(b)
	if err == nil && written < len(b) {
		err = io.ErrShortWrite
	}
	if err == nil {
		w.size += int64(written)
		w.n.Add(uint64(bytes.Count(b, []byte{'\n'})))
	}
	return written, err
}

// pageSize is the unit in which the kernel copies a write() into the page
// cache. It checks for a fatal signal only between pages, so a write that
// stays inside one page is all or nothing, even under kill -9.
const pageSize = 4096

// writePages writes whole lines b to the file so that no write() crosses a
// page boundary: where the next line would cross, the last line written is
// padded with spaces (JSON allows trailing white space) up to the
// boundary. Only a line longer than a page still crosses one. Where the
// next line, or the padding before it, would take the file past MaxSize,
// it rotates first.
func (w *Writer) writePages(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		rest := b[done:]
		room := pageSize - int(w.size%pageSize)
		first := bytes.IndexByte(rest, '\n') + 1
		end := 0
		for end < len(rest) {
			next := end + bytes.IndexByte(rest[end:], '\n') + 1
			if next > room || w.over(next) {
				break
			}
			end = next
		}
		if end == 0 {
			switch {
			case w.size > 0 && (w.over(first) || first > room && first <= pageSize && w.over(room+first)):
				if err := w.rotate(); err != nil {
					return done, err
				}
				continue
			case room < pageSize && first <= pageSize:
				if err := w.padToPage(room); err != nil {
					return done, err
				}
				continue
			}
			end = first
		}
		n, err := w.f.WriteAt(rest[:end], w.size)
		if err == nil && n < end {
			err = io.ErrShortWrite
		}
		if err != nil {
			return done, err
		}
		w.size += int64(end)
		w.n.Add(uint64(bytes.Count(rest[:end], []byte{'\n'})))
		done += end
	}
	return done, nil
}

// over reports whether n more bytes would take the file past MaxSize.
// Stdout is never rotated.
func (w *Writer) over(n int) bool {
	return w.opts.MaxSize > 0 && !w.stdout && w.size+int64(n) > w.opts.MaxSize
}

// padToPage rewrites the file's last newline as room spaces and a newline,
// so the file ends on a page boundary: one write inside one page.
func (w *Writer) padToPage(room int) error {
	pad := bytes.Repeat([]byte{' '}, room+1)
	pad[room] = '\n'
	n, err := w.f.WriteAt(pad, w.size-1)
	if err == nil && n < len(pad) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return err
	}
	w.size += int64(room)
	return nil
}

// rewind cuts what a failed write left after the last whole record.
func (w *Writer) rewind() error {
	if err := w.f.Truncate(w.size); err != nil {
		return err
	}
	_, err := w.f.Seek(w.size, io.SeekStart)
	return err
}

// fail cuts a partly written line back off the file.
func (w *Writer) fail(err error) error {
	err = pathless(err) // the path is said once, below
	name := w.opts.Path
	if w.opts.Path == "-" {
		name = "records"
	}
	if w.f == nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if terr := w.f.Truncate(w.size); terr != nil {
		return fmt.Errorf("writing %s: %w (and cutting the partial record: %v)", name, err, terr)
	}
	return fmt.Errorf("writing %s: %w", name, err)
}

// rotate closes the current file, shifts FILE.i to FILE.i+1 (dropping the
// oldest) and FILE to FILE.1, and creates a new FILE. Only the files that
// exist are shifted: FILE.1 up to the first one missing. Its work is
// bounded by the files on disk, not by MaxFiles.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", w.opts.Path, pathless(err))
	}
	w.f = nil
	name := func(i int) string {
		if i == 0 {
			return w.opts.Path
		}
		return w.opts.Path + "." + strconv.Itoa(i)
	}
	last := w.opts.MaxFiles - 1
	shift := 0 // FILE.1 ... FILE.shift exist
	for shift < last {
		if _, err := os.Lstat(name(shift + 1)); err != nil {
			break
		}
		shift++
	}
	if shift == last {
		if err := os.Remove(name(last)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotating: %w", err)
		}
		shift--
	}
	for i := shift; i >= 0; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotating: %w", err)
		}
	}
	// Created like the first file, and only created: a path that
	// reappeared since the rename is someone else's.
	f, err := outfile.Open(w.opts.Path, 0o600, false)
	if err == nil && !f.Created {
		f.Close()
		err = errors.New("it reappeared after it was renamed")
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", w.opts.Path, err)
	}
	w.f, w.out, w.size = f.File, f.File, 0
	return nil
}

// Stalled says, from any goroutine, whether a Flush has been under way for
// d or more: on a pipe, a reader that stopped reading.
func (w *Writer) Stalled(d time.Duration) bool {
	began := w.flushing.Load()
	return began != 0 && time.Since(time.Unix(0, began)) >= d
}

// Records is how many records were written (flushed).
func (w *Writer) Records() uint64 { return w.n.Load() }

// Close flushes and closes the file.
func (w *Writer) Close() error {
	ferr := w.Flush()
	if w.f == nil || w.stdout {
		return ferr
	}
	err := w.f.Close()
	w.f = nil
	if ferr != nil {
		return ferr
	}
	if err != nil {
		return fmt.Errorf("closing %s: %w", w.opts.Path, err)
	}
	return nil
}
