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
	"github.com/socklife/socklife/internal/runtimes"
	"github.com/socklife/socklife/tracer"
)

// runtimeEndpoint is --runtime-endpoint: a container runtime's API socket
// to ask for names, instead of the usual places; runtimeTimeout is
// --runtime-timeout, how long one call to it may take.
var (
	runtimeEndpoint string
	runtimeTimeout  time.Duration
	// containersOn is --containers: false names no container (no cgroup
	// reads, no runtime calls), as on a host whose runtime must not be asked
	containersOn bool
)

// The run's container state, made on first use: newRootCmd starts each
// run (a test runs many in one process) with resetContainers.
var (
	attribution  func() (*container.Attributor, error)
	runtimeNamer func() (*runtimes.Namer, error)
	netnsNames   func() *container.NetnsNames
)

func init() { resetContainers() }

// resetContainers forgets the previous run's attributor, namer and
// namespace names.
func resetContainers() {
	runtimeEndpoint, runtimeTimeout, containersOn = "", defaultRuntimeTimeout, true
	attribution = sync.OnceValues(newAttribution)
	runtimeNamer = sync.OnceValues(newRuntimeNamer)
	netnsNames = sync.OnceValue(newNetnsNames)
}

// newAttribution is the run's attributor, or why there is none. Names come
// from the container runtimes (runtimeNamer), asked in the background.
func newAttribution() (*container.Attributor, error) {
	if !containersOn {
		return nil, errContainersOff
	}
	h, err := container.FindHierarchy()
	if err != nil {
		return nil, err
	}
	res, err := container.NewResolver(h)
	if err != nil {
		return nil, err
	}
	namer, err := runtimeNamer()
	if err != nil {
		return nil, err
	}
	return container.NewAttributor(res, func(rt container.Runtime, id string) (string, container.Pod, bool) {
		n, ok := namer.Lookup(string(rt), id)
		return n.Container, container.Pod{Namespace: n.PodNamespace, Name: n.PodName, UID: n.PodUID}, ok
	}, namer.Answers), nil
}

var errContainersOff = errors.New("--containers=false")

// newRuntimeNamer asks the container runtimes (or --runtime-endpoint) for
// names; one a run.
func newRuntimeNamer() (*runtimes.Namer, error) {
	if runtimeTimeout <= 0 {
		return nil, badInput("--runtime-timeout %v: want a positive duration", runtimeTimeout)
	}
	n, err := runtimes.New(runtimes.Options{Endpoint: runtimeEndpoint, Timeout: runtimeTimeout})
	if err != nil {
		return nil, badInput("--runtime-endpoint: %w", err)
	}
	return n, nil
}

// checkRuntimeEndpoint refuses a --runtime-endpoint that is not a unix
// socket (bad input) or does not answer (exit 1): asked for by name, a
// runtime that is not there is an error, not a quiet lack of names.
func checkRuntimeEndpoint(ctx context.Context) error {
	n, err := runtimeNamer()
	if err != nil || runtimeEndpoint == "" {
		return err
	}
	for _, st := range n.Probe(ctx) {
		if st.Err != nil {
			return fmt.Errorf("--runtime-endpoint %s does not answer as a CRI or Docker API: %w", st.Endpoint, st.Err)
		}
	}
	return nil
}

// settleNames gives the runtimes a moment to answer the lookups a one-shot
// command (snapshot) started, so that its only output has the names.
func settleNames(ctx context.Context) {
	n, err := runtimeNamer()
	if err != nil {
		return
	}
	// a call's timeout, and a moment for the answers to be stored
	ctx, cancel := context.WithTimeout(ctx, runtimeTimeout+time.Second)
	defer cancel()
	n.Settle(ctx)
}

// defaultRuntimeTimeout bounds one call to a runtime: one that is slow or
// hung costs this once, then is left alone for a while.
const defaultRuntimeTimeout = time.Second

// newNetnsNames names the run's namespaces, by their containers when
// there is an attributor, else by /run/netns names alone.
func newNetnsNames() *container.NetnsNames {
	a, _ := attribution()
	return container.NewNetnsNames(a)
}

// newNames is what an output goroutine names kernel numbers with. Without
// a cgroup v2 hierarchy to read, sockets are all the host's; then asking
// for --container or --pod is an error, not an empty answer.
func newNames(flt *filter.Filter) (*render.Names, error) {
	a, err := attribution()
	if err != nil {
		switch {
		case flt != nil && flt.Contained() && errors.Is(err, errContainersOff):
			return nil, badInput("--container and --pod name containers, which --containers=false turns off")
		case flt != nil && flt.Contained():
			return nil, fmt.Errorf("--container and --pod need the cgroup v2 hierarchy: %w", err)
		}
		if !errors.Is(err, container.ErrNoCgroup2) && !errors.Is(err, errContainersOff) {
			return nil, err
		}
	}
	if flt != nil && flt.Contained() && !flt.KernelContainers() {
		// a filter by name: the names of the containers running now,
		// before the first event is tested
		a.Prefetch()
		settleNames(context.Background())
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

// startTracer attaches a tracer with opts, its cgroup filter set from flt
// (kernelCgroups) and followed until ctx ends.
func startTracer(ctx context.Context, opts tracer.Options, flt *filter.Filter) (*tracer.Tracer, error) {
	follow := kernelCgroups(&opts, flt)
	tr, err := tracer.New(opts)
	if err != nil {
		return nil, err
	}
	go follow(ctx, tr.AddCgroups)
	return tr, nil
}
