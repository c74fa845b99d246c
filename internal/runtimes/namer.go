// Package runtimes names containers: given the runtime and container id
// that a cgroup path gives (internal/container), it asks the runtime's own
// API for the container's name and its pod's name, namespace and uid:
//
//	containerd  CRI over /run/containerd/containerd.sock
//	cri-o       CRI over /var/run/crio/crio.sock
//	docker      Docker Engine API over /var/run/docker.sock
//	podman      Docker Engine API over /run/podman/podman.sock
//
// A Namer answers from its cache and never waits for a runtime: the
// event path asks on every event, and a runtime that is absent or hung
// must cost it nothing. Names arrive a moment later, from a background
// fetch; a runtime that does not answer costs one timeout, then rests.
// Names once fetched are kept until evicted: what CRI names a container
// never changes (a `docker rename` is not seen), and an id the runtime
// did not know is asked about again after a while.
package runtimes

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The runtimes Lookup knows, as internal/container names them.
const (
	Containerd = "containerd"
	CRIO       = "cri-o"
	Docker     = "docker"
	Podman     = "podman"
)

// Options tune a Namer; the zero value is the defaults.
type Options struct {
	// Endpoint, when set (--runtime-endpoint), is the one socket asked
	// for every runtime's containers: a path or a unix:// URL. Whether it
	// speaks CRI or the Docker API is found out by asking.
	Endpoint string
	// Timeout bounds one call to a runtime, connecting included. 1 s.
	Timeout time.Duration
	// DownFor is how long a runtime that failed to answer is left alone
	// before it is asked again. 30 s.
	DownFor time.Duration
	// MaxEntries caps the cache; the least recently looked-up id goes
	// first. 4096.
	MaxEntries int
}

// A Namer looks up container names, caching them per container id.
// Its methods may be called from any goroutine.
type Namer struct {
	// answers counts the names filed so far (Answers)
	answers     atomic.Uint64
	timeout     time.Duration
	downFor     time.Duration
	notFoundFor time.Duration // how long an id the runtime does not know stays unknown
	maxEntries  int
	now         func() time.Time // tests move the clock

	backends map[string]*backend // by runtime; "" is the --runtime-endpoint for all
	ctx      context.Context     // ends in-flight calls at Close
	cancel   context.CancelFunc
	workers  sync.WaitGroup

	mu      sync.Mutex
	entries map[string]*entry // by container id
	lru     list.List         // of *entry, most recently looked up first
	closed  bool
	// fetching counts fetches queued or running; settled is closed
	// whenever it is zero (and replaced when it leaves zero)
	fetching int
	settled  chan struct{}
}

type entry struct {
	id      string
	names   Names
	known   bool      // names came from the runtime
	pending bool      // queued for or in a fetch: at most one per id
	retryAt time.Time // while unknown and not pending: fetch again from then on
	elem    *list.Element
}

var errNotFound = errors.New("no such container")

// New makes a Namer. It touches no socket: the first Lookup of each
// runtime does. An Endpoint that is not a unix socket is an error.
func New(opts Options) (*Namer, error) {
	n := &Namer{
		timeout:     opts.Timeout,
		downFor:     opts.DownFor,
		notFoundFor: 10 * time.Second,
		maxEntries:  opts.MaxEntries,
		now:         time.Now,
		backends:    map[string]*backend{},
		entries:     map[string]*entry{},
		settled:     make(chan struct{}),
	}
	close(n.settled)
	if n.timeout <= 0 {
		n.timeout = time.Second
	}
	if n.downFor <= 0 {
		n.downFor = 30 * time.Second
	}
	if n.maxEntries <= 0 {
		n.maxEntries = 4096
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if opts.Endpoint != "" {
		path, err := socketPath(opts.Endpoint)
		if err != nil {
			return nil, err
		}
		n.backends[""] = newBackend(path, protoUnknown)
		return n, nil
	}
	for rt, ep := range defaultEndpoints {
		n.backends[rt] = newBackend(ep.path, ep.proto)
	}
	return n, nil
}

// socketPath accepts what crictl's --runtime-endpoint does for a local
// runtime: unix:///path or a bare path.
func socketPath(endpoint string) (string, error) {
	path, found := strings.CutPrefix(endpoint, "unix://")
	if !found && strings.Contains(endpoint, "://") {
		return "", fmt.Errorf("runtime endpoint %q: only unix sockets (unix:///path or /path)", endpoint)
	}
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("runtime endpoint %q: the socket path must be absolute", endpoint)
	}
	return path, nil
}

// Lookup returns the names cached for this container now, and whether
// there are any. It never waits for a runtime: on a miss it queues one
// background fetch for the id (unless one is queued already, the runtime
// is resting after a failure, or the runtime said lately it has no such
// container), and a later Lookup finds what it brought.
func (n *Namer) Lookup(runtime, id string) (Names, bool) {
	if id == "" {
		return Names{}, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.entries[id]
	if e != nil {
		n.lru.MoveToFront(e.elem)
		if e.known {
			return e.names, true
		}
		if e.pending {
			return Names{}, false
		}
	}
	b := n.backendFor(runtime)
	if b == nil || n.closed {
		return Names{}, false
	}
	now := n.now()
	if e != nil && now.Before(e.retryAt) {
		return Names{}, false
	}
	if now.Before(b.downUntil) {
		if e != nil {
			e.retryAt = b.downUntil
		}
		return Names{}, false
	}
	if e == nil {
		e = n.insert(id)
	}
	b.start.Do(func() {
		n.workers.Add(1) // Close sets closed under mu before it waits
		go n.work(b)
	})
	select {
	case b.queue <- id:
		e.pending = true
		if n.fetching == 0 {
			n.settled = make(chan struct{})
		}
		n.fetching++
	default: // the runtime is behind; a later Lookup asks again
	}
	return Names{}, false
}

func (n *Namer) backendFor(runtime string) *backend {
	if b := n.backends[""]; b != nil {
		return b
	}
	return n.backends[runtime]
}

// insert adds an empty entry, evicting the least recently looked up one
// when the cache is full. Called with mu held.
func (n *Namer) insert(id string) *entry {
	for len(n.entries) >= n.maxEntries {
		old := n.lru.Remove(n.lru.Back()).(*entry)
		delete(n.entries, old.id)
	}
	e := &entry{id: id}
	e.elem = n.lru.PushFront(e)
	n.entries[id] = e
	return e
}

// Settle waits until every fetch that Lookups started has ended (each
// bounded by the timeout), or ctx ends. A one-shot command (snapshot)
// looks every id up, settles, and looks up again to print the names; the
// event path never calls it.
func (n *Namer) Settle(ctx context.Context) error {
	n.mu.Lock()
	settled := n.settled
	n.mu.Unlock()
	select {
	case <-settled:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetched ends a fetch that Lookup counted. Called with mu held.
func (n *Namer) fetched() {
	if n.fetching--; n.fetching == 0 {
		close(n.settled)
	}
}

// Answers counts the names the runtimes have given so far: a caller that
// looked an id up in vain need ask again only once it has grown.
func (n *Namer) Answers() uint64 { return n.answers.Load() }

// Close stops the background fetches and closes the runtime connections.
func (n *Namer) Close() error {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	n.workers.Wait()
	n.mu.Lock()
	if n.fetching > 0 { // queued, never to be fetched: nothing to wait for
		n.fetching = 0
		close(n.settled)
	}
	n.mu.Unlock()
	return nil
}
