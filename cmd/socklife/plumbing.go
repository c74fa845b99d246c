package main

// plumbing.go: what every command shares around its work: the ready file,
// warnings on stderr, a broken pipe taken as the reader being done, and a
// stop that a blocked output cannot hold up.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/socklife/socklife/internal/outfile"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// tracerFlags are the switches of every command that attaches the tracer:
// which hooks to skip, --debug's account of the ladder, and the ready file.
type tracerFlags struct {
	disableHooks []string
	debug        bool
	readyFile    string
	ringSize     uint32
}

func (h *tracerFlags) register(fl *pflag.FlagSet) {
	fl.StringArrayVar(&h.disableHooks, "disable-hook", nil, "do not use this hook, to force a fallback (repeatable): "+strings.Join(tracer.HookNames, ", "))
	fl.BoolVar(&h.debug, "debug", false, "log which hook each feature uses and why others failed")
	fl.StringVar(&h.readyFile, "ready-file", "", "write this file once attached (for tests)")
	fl.MarkHidden("ready-file")
	// Tests make events get lost with a tiny ring.
	fl.Uint32Var(&h.ringSize, "ring-size", 0, "the ring buffer's size in bytes, a power of two (for tests)")
	fl.MarkHidden("ring-size")
}

// checkedValue refuses what no flag means: an empty value, which a list
// flag would take as no filter and --max-size as no rotation (the user
// typed something and got nothing), and a float that is not a number
// (--growth NaN never alerts, and JSON cannot write it).
type checkedValue struct{ pflag.Value }

func (v checkedValue) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return errEmptyValue
	}
	if t := v.Type(); t == "float64" || t == "float32" {
		if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return errors.New("not a finite number")
		}
	}
	return v.Value.Set(s)
}

var errEmptyValue = errors.New("empty: give a value, or leave the flag out")

// checkValues puts checkedValue around every flag of c that takes a value.
func checkValues(c *cobra.Command) {
	c.Flags().VisitAll(wrapValue)
}

// wrapValue puts checkedValue around f if it takes a value.
func wrapValue(f *pflag.Flag) {
	if f.Value.Type() != "bool" {
		f.Value = checkedValue{f.Value}
	}
}

// check is --disable-hook's and --ring-size's check, and the ready
// file's before anything is attached (a refused path is a runtime
// failure, exit 1, not bad input).
func (h *tracerFlags) check() error {
	if err := tracer.CheckRingSize(h.ringSize); err != nil {
		return badInput("--ring-size: %w", err)
	}
	if err := checkDisableHooks(h.disableHooks); err != nil {
		return err
	}
	if h.readyFile != "" {
		if err := outfile.Check(h.readyFile); err != nil {
			return fmt.Errorf("the ready file %s: %w", h.readyFile, err)
		}
	}
	return nil
}

// apply puts the flags that shape the tracer into opts.
func (h *tracerFlags) apply(opts *tracer.Options) {
	opts.DisableHooks, opts.RingSize = h.disableHooks, h.ringSize
}

// checkDisableHooks is --disable-hook's check, for every command that takes it.
func checkDisableHooks(names []string) error {
	if err := tracer.CheckHookNames(names); err != nil {
		return badInput("--disable-hook: %w", err)
	}
	return nil
}

// writeReadyFile tells a test or script that everything is attached. It
// runs as root in a directory others may write (/tmp): the file is created
// (O_EXCL), or else must be a regular file of ours reached without a
// symbolic link (outfile.Open); check refused the rest before attaching.
func writeReadyFile(path string) error {
	if path == "" {
		return nil
	}
	f, err := outfile.Open(path, 0o644, false)
	if err == nil {
		defer f.Close()
		if !f.Created {
			err = f.Truncate(0)
		}
	}
	if err == nil {
		_, err = fmt.Fprintf(f, "%d\n", os.Getpid())
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is said once, here
		}
		return fmt.Errorf("writing the ready file %s: %w", path, err)
	}
	return nil
}

// stderrLogger is a long-running command's voice on stderr: warnings (and,
// with --debug, which hooks were tried) as the rest of socklife speaks,
// one line each, "socklife: ...". It becomes slog's default, for any part
// given no logger, and hears snapshot's notes of namespaces skipped.
func stderrLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelWarn
	if debug {
		level = slog.LevelDebug
	}
	log := slog.New(&lineHandler{w: w, level: level, mu: new(sync.Mutex)})
	slog.SetDefault(log)
	snapshot.SetNotes(func(msg string) { log.Warn(msg) })
	return log
}

// lineHandler writes "socklife: msg key=value ..." lines.
type lineHandler struct {
	w     io.Writer
	level slog.Level
	attrs []slog.Attr
	mu    *sync.Mutex // shared with the handlers WithAttrs makes: one writer
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("socklife: ")
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%s", a.Key, strconv.Quote(a.Value.String()))
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clip(h.attrs), as...)
	return &c
}

// WithGroup: socklife logs no groups; their attributes print unqualified.
func (h *lineHandler) WithGroup(string) slog.Handler { return h }

func isBrokenPipe(err error) bool {
	return errors.Is(err, syscall.EPIPE)
}

// cancelOnBrokenPipe calls cancel when out is a pipe whose reader has gone
// (`socklife trace --port 1 | head -1`): without it a quiet stream would
// notice only at its next write, which may never come.
func cancelOnBrokenPipe(out io.Writer, cancel func()) {
	f, ok := out.(*os.File)
	if !ok {
		return
	}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return
	}
	go func() {
		// With no events asked for, poll reports only POLLERR (the read end
		// closed) and POLLHUP; it blocks until then, or until we exit.
		fds := []unix.PollFd{{Fd: int32(f.Fd())}}
		for {
			n, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || (n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0) {
				cancel()
				return
			}
		}
	}()
}

// stopGrace bounds how long a command goes on once told to stop (a signal,
// --duration, its reader gone) with its output blocked, before it exits
// without finishing. A write blocked on a reader that stopped reading
// waits in the kernel, where no context reaches it.
const stopGrace = time.Second

// errOutputBlocked is untilStopped's answer when it gave up waiting.
var errOutputBlocked = errors.New("stopped with the output blocked: its reader stopped reading")

// untilStopped runs work on a goroutine of its own and returns its error;
// or, once ctx has ended, stopGrace has passed and stalled(stopGrace) says
// the output has been blocked that long (nil: take it as blocked),
// errOutputBlocked, leaving work behind for the process exit to end. A
// stop that is slow for another reason (record's drain and resync, each
// bounded) is waited for.
func untilStopped(ctx context.Context, stalled func(time.Duration) bool, work func() error) error {
	done := make(chan error, 1)
	go func() { done <- work() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	ended := time.Now()
	tick := time.NewTicker(stopGrace / 10)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
		}
		if time.Since(ended) >= stopGrace && (stalled == nil || stalled(stopGrace)) {
			return errOutputBlocked
		}
	}
}

// lastResort is how long after SIGINT or SIGTERM main waits for a command
// without a bounded stop of its own: longer than the slowest stop a
// command makes by itself (record's drain and resync at stop, 5 s each
// at most, then its last writes).
const lastResort = 15 * time.Second

// exitIfStuck is main's last resort, for the commands without a bounded
// stop of their own (snapshot writing to a stalled pipe, say): signals
// are caught, so the kernel no longer ends a process blocked in a write.
// main returns as soon as its command does, so this only ever ends a
// command still running lastResort after the signal; exit status 1.
func exitIfStuck(ctx context.Context) {
	<-ctx.Done()
	time.Sleep(lastResort)
	fmt.Fprintln(os.Stderr, "socklife:", errOutputBlocked)
	os.Exit(1)
}

// watchedWriter tells, from any goroutine, how long its current Write has
// been blocked: what untilStopped asks to tell a stop that is slow from one
// that cannot end.
type watchedWriter struct {
	w     io.Writer
	since atomic.Int64 // when the Write under way began (Unix ns); 0: none
}

func (ww *watchedWriter) Write(p []byte) (int, error) {
	ww.since.Store(time.Now().UnixNano())
	defer ww.since.Store(0)
	return ww.w.Write(p)
}

// Stalled says whether a Write has been under way for d or more.
func (ww *watchedWriter) Stalled(d time.Duration) bool {
	began := ww.since.Load()
	return began != 0 && time.Since(time.Unix(0, began)) >= d
}
