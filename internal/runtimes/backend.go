package runtimes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// protocol is what an endpoint speaks.
type protocol string

const (
	protoUnknown protocol = ""
	protoCRI     protocol = "cri"
	protoDocker  protocol = "docker"
)

type endpoint struct {
	path  string
	proto protocol
}

// Where each runtime listens on a default install, as root.
var defaultEndpoints = map[string]endpoint{
	Containerd: {"/run/containerd/containerd.sock", protoCRI},
	CRIO:       {"/var/run/crio/crio.sock", protoCRI},
	Docker:     {"/var/run/docker.sock", protoDocker},
	Podman:     {"/run/podman/podman.sock", protoDocker},
}

// client is one protocol's calls.
type client interface {
	names(ctx context.Context, id string) (Names, error)
	version(ctx context.Context) (name, version string, err error)
	close() error
}

// A backend is one runtime socket and the one goroutine that asks it, so
// that a runtime that hangs holds one call, not one per container.
type backend struct {
	path         string
	initialProto protocol    // as configured; protoUnknown for --runtime-endpoint
	queue        chan string // ids to fetch
	start        sync.Once

	// guarded by Namer.mu
	downUntil time.Time
	attempts  int // fetches that reached for the socket; tests count them
	lastErr   error

	// the worker's own
	proto protocol
	cl    client
}

func newBackend(path string, proto protocol) *backend {
	return &backend{path: path, initialProto: proto, proto: proto, queue: make(chan string, 256)}
}

// work fetches queued ids until Close.
func (n *Namer) work(b *backend) {
	defer n.workers.Done()
	defer func() {
		if b.cl != nil {
			b.cl.close()
		}
	}()
	for {
		select {
		case <-n.ctx.Done():
			return
		case id := <-b.queue:
			n.fetch(b, id)
		}
	}
}

// fetch asks the runtime about one id and files the answer. An id queued
// before the runtime failed is not asked: the runtime rests.
func (n *Namer) fetch(b *backend, id string) {
	n.mu.Lock()
	resting := n.now().Before(b.downUntil)
	if !resting {
		b.attempts++
	}
	n.mu.Unlock()

	var names Names
	var err error
	if !resting {
		ctx, cancel := context.WithTimeout(n.ctx, n.timeout)
		names, err = b.names(ctx, id)
		cancel()
	}
	failed := err != nil && !errors.Is(err, errNotFound)
	if failed && b.cl != nil {
		// a fresh connection next time, not gRPC's reconnect back-off
		b.cl.close()
		b.cl = nil
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	defer n.fetched()
	now := n.now()
	if failed {
		b.downUntil, b.lastErr = now.Add(n.downFor), err
	}
	e := n.entries[id]
	if e == nil { // evicted meanwhile
		return
	}
	e.pending = false
	switch {
	case resting || failed:
		e.retryAt = b.downUntil
	case err != nil:
		e.retryAt = now.Add(n.notFoundFor)
	default:
		e.names, e.known = names, true
		n.answers.Add(1)
	}
}

func (b *backend) names(ctx context.Context, id string) (Names, error) {
	if b.cl == nil {
		cl, proto, _, _, err := connect(ctx, b.path, b.proto)
		if err != nil {
			return Names{}, err
		}
		b.cl, b.proto = cl, proto
	}
	return b.cl.names(ctx, id)
}

// connect makes a client for the socket at path and checks that it
// answers, asking for the runtime's version. An unknown protocol is found
// out by asking both ways at once: a CRI Version call and a Docker
// /_ping; whichever answers is it.
func connect(ctx context.Context, path string, proto protocol) (client, protocol, string, string, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, proto, "", "", fmt.Errorf("runtime socket: %w", err)
	}
	if proto != protoUnknown {
		cl, name, version, err := connectAs(ctx, path, proto)
		return cl, proto, name, version, err
	}
	type answer struct {
		cl            client
		proto         protocol
		name, version string
		err           error
	}
	answers := make(chan answer, 2)
	for _, p := range []protocol{protoCRI, protoDocker} {
		go func() {
			cl, name, version, err := connectAs(ctx, path, p)
			answers <- answer{cl, p, name, version, err}
		}()
	}
	var errs []error
	for left := 2; left > 0; left-- {
		a := <-answers
		if a.err != nil {
			errs = append(errs, a.err)
			continue
		}
		if left == 2 { // the other may answer too (a proxy?) or hang till ctx ends
			go func() {
				if b := <-answers; b.err == nil {
					b.cl.close()
				}
			}()
		}
		return a.cl, a.proto, a.name, a.version, nil
	}
	// one line: it ends up in `socklife info` and in an error message
	return nil, protoUnknown, "", "", fmt.Errorf("%s answers neither CRI nor the Docker API: %w", path, joined(errs))
}

func connectAs(ctx context.Context, path string, proto protocol) (client, string, string, error) {
	var cl client
	if proto == protoCRI {
		c, err := dialCRI(path)
		if err != nil {
			return nil, "", "", err
		}
		cl = c
	} else {
		cl = dialDocker(path)
	}
	name, version, err := cl.version(ctx)
	if err != nil {
		cl.close()
		return nil, "", "", err
	}
	return cl, name, version, nil
}

// joined is errors.Join on one line ("; " between, not newlines), for
// errors.Is all the same.
type joined []error

func (j joined) Error() string {
	msgs := make([]string, len(j))
	for i, err := range j {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (j joined) Unwrap() []error { return j }
