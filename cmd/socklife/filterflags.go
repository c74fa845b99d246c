package main

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/socklife/socklife/internal/filter"
	"github.com/socklife/socklife/tracer"
)

// parseFilter checks the filter flags (internal/filter, the same in every
// command); what they refuse is bad input.
func parseFilter(f *filter.Flags) (*filter.Filter, error) {
	flt, err := f.Parse()
	if err != nil {
		return nil, usageError{err}
	}
	return flt, nil
}

// hookFlags are the tracer's switches that trace and record share.
type hookFlags struct {
	disableHooks []string
	debug        bool
}

func (h *hookFlags) register(fl *pflag.FlagSet) {
	fl.StringArrayVar(&h.disableHooks, "disable-hook", nil, "do not use this hook, to force a fallback (repeatable): "+strings.Join(tracer.HookNames, ", "))
	fl.BoolVar(&h.debug, "debug", false, "log which hook each feature uses and why others failed")
}

// checkDisableHooks is --disable-hook's check, for every command that takes it.
func checkDisableHooks(names []string) error {
	if err := tracer.CheckHookNames(names); err != nil {
		return badInput("--disable-hook: %w", err)
	}
	return nil
}

// eventOwners are the processes an event may be matched by: its owner, or
// the holders of the listener a child waits on (a pre-fork server's
// workers), none when unknown.
func eventOwners(ev *tracer.Event) []tracer.Holder {
	if len(ev.Holders) > 0 {
		return ev.Holders
	}
	if ev.OwnerSource == tracer.OwnerUnknown {
		return nil
	}
	return []tracer.Holder{{PID: ev.Owner.PID, Comm: ev.Owner.Comm}}
}
