package main

// containers.go: container attribution for every command: one attributor
// a run, shared by its output goroutines, each with its own render.Names.

import (
	"errors"
	"fmt"
	"sync"

	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/filter"
	"github.com/socklife/socklife/internal/render"
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
