// Package record writes `socklife record`'s output (lines render.AppendRecord
// makes): NDJSON in files created mode 0600 and rotated by size, where every
// write() holds only whole lines (a killed writer never leaves half a
// record, a full disk never keeps one).
package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Options say where records go.
type Options struct {
	// Path is the file to write; "-" writes to Stdout instead.
	Path   string
	Stdout io.Writer
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
	f        *os.File
	out      io.Writer
	buf      []byte
	buffered uint64 // records in buf
	size     int64  // bytes in the current file, all of them whole lines
	n        uint64
	err      error
}

// flushAt is the buffer size at which Add writes without waiting for Flush.
const flushAt = 64 << 10

// Create opens the output (creating or truncating it, mode 0600) so that an
// unwritable path is found before anything else starts.
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
		return w, nil
	}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.opts.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is said once, here
		}
		return fmt.Errorf("creating %s: %w", w.opts.Path, err)
	}
	// O_CREAT leaves an existing file's mode alone: addresses are sensitive.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("making %s private: %w", w.opts.Path, err)
	}
	w.f, w.out, w.size = f, f, 0
	return nil
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
	if w.f != nil {
		return w.writePages(b)
	}
	written, err := w.out.Write(b)
	if err == nil && written < len(b) {
		err = io.ErrShortWrite
	}
	if err == nil {
		w.size += int64(written)
		w.n += uint64(bytes.Count(b, []byte{'\n'}))
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
		w.n += uint64(bytes.Count(rest[:end], []byte{'\n'}))
		done += end
	}
	return done, nil
}

// over reports whether n more bytes would take the file past MaxSize.
func (w *Writer) over(n int) bool {
	return w.opts.MaxSize > 0 && w.size+int64(n) > w.opts.MaxSize
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
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is said once, below
	}
	if w.f == nil {
		return fmt.Errorf("writing records: %w", err)
	}
	if terr := w.f.Truncate(w.size); terr != nil {
		return fmt.Errorf("writing %s: %w (and cutting the partial record: %v)", w.opts.Path, err, terr)
	}
	return fmt.Errorf("writing %s: %w", w.opts.Path, err)
}

// rotate closes the current file, shifts FILE.i to FILE.i+1 (dropping the
// oldest) and FILE to FILE.1, and starts a new FILE.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", w.opts.Path, err)
	}
	w.f = nil
	name := func(i int) string {
		if i == 0 {
			return w.opts.Path
		}
		return w.opts.Path + "." + strconv.Itoa(i)
	}
	last := w.opts.MaxFiles - 1
	if err := os.Remove(name(last)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotating: %w", err)
	}
	for i := last - 1; i >= 0; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotating: %w", err)
		}
	}
	return w.open()
}

// Records is how many records were written (flushed).
func (w *Writer) Records() uint64 { return w.n }

// Close flushes and closes the file.
func (w *Writer) Close() error {
	ferr := w.Flush()
	if w.f == nil {
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
