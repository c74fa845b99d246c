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
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/socklife/socklife/internal/outfile"
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
}

func (h *tracerFlags) register(fl *pflag.FlagSet) {
	fl.StringArrayVar(&h.disableHooks, "disable-hook", nil, "do not use this hook, to force a fallback (repeatable): "+strings.Join(tracer.HookNames, ", "))
	fl.BoolVar(&h.debug, "debug", false, "log which hook each feature uses and why others failed")
	fl.StringVar(&h.readyFile, "ready-file", "", "write this file once attached (for tests)")
	fl.MarkHidden("ready-file")
}

// check is --disable-hook's check, and the ready file's before anything
// is attached (a refused path is a runtime failure, exit 1, not bad input).
func (h *tracerFlags) check() error {
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

// stopGrace bounds how long a command goes on once told to stop (a signal,
// --duration, its reader gone) before it exits without finishing: enough
// to apply and write what the kernel had written by then, which takes
// well under a second. A write blocked on a reader that stopped reading
// waits in the kernel, where no context reaches it.
const stopGrace = time.Second

// errOutputBlocked is untilStopped's answer when it gave up waiting.
var errOutputBlocked = errors.New("stopped with the output blocked: its reader stopped reading")

// untilStopped runs work on a goroutine of its own and returns its error;
// or, once ctx has ended and work has not returned stopGrace later,
// errOutputBlocked, leaving work behind for the process exit to end.
func untilStopped(ctx context.Context, work func() error) error {
	done := make(chan error, 1)
	go func() { done <- work() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errOutputBlocked
	}
}

// exitIfStuck is main's last resort, for the commands without a bounded
// stop of their own (snapshot writing to a stalled pipe, say): signals
// are caught, so the kernel no longer ends a process blocked in a write.
// Once ctx (cancelled by SIGINT or SIGTERM) ends, a command still running
// after the longest stop a command takes by itself (trace's drain and
// grace) is ended here, exit status 1.
func exitIfStuck(ctx context.Context) {
	<-ctx.Done()
	time.Sleep(traceDrain + 2*stopGrace)
	fmt.Fprintln(os.Stderr, "socklife:", errOutputBlocked)
	os.Exit(1)
}
