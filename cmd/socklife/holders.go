package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/socklife/socklife/internal/holders"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// Listener holders change as servers fork (nginx's workers, at start and
// at every reload): rescan every holdersPeriod, and within holdersSoon of
// an event naming a listener no scan has listed.
const (
	holdersPeriod = 30 * time.Second
	holdersSoon   = time.Second
)

// keepHolders keeps the registry and the tracer's listener entries (their
// holders, for --pid) current until ctx ends.
func keepHolders(ctx context.Context, tr *tracer.Tracer, reg *holders.Registry, log *slog.Logger) {
	reg.Keep(ctx, holdersPeriod, holdersSoon, func(socks []snapshot.Socket) {
		listeners, _ := holders.Seeds(socks)
		if err := tr.SeedListeners(listeners); err != nil {
			log.Debug("updating listener holders", "error", err)
		}
	}, func(err error) { log.Debug("rescanning listener holders", "error", err) })
}
