package main

import (
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
