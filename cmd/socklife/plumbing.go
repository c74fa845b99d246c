package main

// plumbing.go: what every command shares around its work: the ready file,
// warnings on stderr, and a broken pipe taken as the reader being done.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"github.com/socklife/socklife/tracer"
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

// check is --disable-hook's and --ring-size's check.
func (h *tracerFlags) check() error {
	if err := tracer.CheckRingSize(h.ringSize); err != nil {
		return badInput("--ring-size: %w", err)
	}
	return checkDisableHooks(h.disableHooks)
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
// runs as root in a directory others may write (/tmp): a symlink planted at
// path is not followed and a device is not written, only a regular file,
// created if missing.
func writeReadyFile(path string) error {
	if path == "" {
		return nil
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o644)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			err = errors.New("a symbolic link, not followed")
		}
		return fmt.Errorf("writing the ready file %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("writing the ready file %s: not a regular file", path)
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("writing the ready file: %w", err)
	}
	if _, err := fmt.Fprintf(f, "%d\n", os.Getpid()); err != nil {
		return fmt.Errorf("writing the ready file: %w", err)
	}
	return nil
}

// stderrLogger prints warnings as single lines without timestamps; with
// --debug it also says which hooks were tried.
func stderrLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelWarn
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

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
