// Command socklife traces the life of sockets on a Linux host: what exists now
// (snapshot), every TCP state change as it happens (trace), and, from both,
// the live socket table behind record, top and backlog.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go exitIfStuck(ctx)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		var quiet exitStatus
		if !errors.As(err, &quiet) {
			fmt.Fprintln(os.Stderr, "socklife:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError marks bad input (an unknown flag value, a malformed address):
// exit status 2, as for a cobra usage error, so scripts can tell it from a
// runtime failure (1).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func badInput(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitStatus lets a command choose its exit status without printing an error
// line, e.g. a watch that found what it watches for.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func exitCode(err error) int {
	var ue usageError
	var es exitStatus
	switch {
	case errors.As(err, &es):
		return int(es)
	case errors.As(err, &ue):
		return 2
	}
	return 1
}
