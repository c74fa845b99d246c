package main

// containers.go: container attribution for every command: one attributor
// a run, shared by its output goroutines, each with its own render.Names.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/filter"
	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/tracer"
)

// runtimeEndpoint is --runtime-endpoint: a container runtime's API socket
// to ask for names, instead of the usual places.
var runtimeEndpoint string

// attribution is the run's attributor, or why there is none.
var attribution = sync.OnceValues(func() (*container.Attributor, error) {
	h, err := container.FindHierarchy()
	if err != nil {
		return nil, err
	}
	res, err := container.NewResolver(h)
	if err != nil {
		return nil, err
	}
	return container.NewAttributor(res, nil), nil
})

// netnsNames names the run's namespaces, by their containers when there
// is an attributor, else by /run/netns names alone.
var netnsNames = sync.OnceValue(func() *container.NetnsNames {
	a, _ := attribution()
	return container.NewNetnsNames(a)
})

// newNames is what an output goroutine names kernel numbers with. Without
// a cgroup v2 hierarchy to read, sockets are all the host's; then asking
// for --container or --pod is an error, not an empty answer.
func newNames(flt *filter.Filter) (*render.Names, error) {
	a, err := attribution()
	if err != nil {
		if flt != nil && flt.Contained() {
			return nil, fmt.Errorf("--container and --pod need the cgroup v2 hierarchy: %w", err)
		}
		if !errors.Is(err, container.ErrNoCgroup2) {
			return nil, err
		}
	}
	return &render.Names{Containers: a, Netns: netnsNames()}, nil
}

// cgroupRescan is how often a command filtering by container in the kernel
// looks for the cgroups of containers started since.
const cgroupRescan = time.Second

// kernelCgroups gives the tracer its part of --container and --pod when
// they say only what a cgroup path says (ids, pod uids): the cgroups of the
// containers they name now. The returned follow, run in a goroutine, adds
// the cgroups of containers that start later, until ctx ends; a name
// (container or pod) needs the runtime's answer, so then everything stays
// in user space and follow does nothing.
func kernelCgroups(opts *tracer.Options, flt *filter.Filter) (follow func(ctx context.Context, add func(...uint64) error)) {
	a, err := attribution()
	if err != nil || !flt.KernelContainers() {
		return func(context.Context, func(...uint64) error) {}
	}
	seen := map[uint64]bool{}
	for _, id := range a.Matching(flt.PathMatches) {
		seen[id] = true
	}
	opts.ByCgroup, opts.Cgroups = true, slices.Collect(maps.Keys(seen))
	return func(ctx context.Context, add func(...uint64) error) {
		tick := time.NewTicker(cgroupRescan)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var fresh []uint64
			for _, id := range a.Matching(flt.PathMatches) {
				if !seen[id] {
					seen[id] = true
					fresh = append(fresh, id)
				}
			}
			if err := add(fresh...); err != nil {
				slog.Warn("following new containers' cgroups", "error", err)
			}
		}
	}
}
