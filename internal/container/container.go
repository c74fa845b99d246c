package container

// container.go: from a cgroup id to a Container. The kernel gives cgroup
// ids; the Resolver turns one into its cgroup v2 path, ParsePath reads the
// runtime, container id and pod uid from the path's naming conventions,
// and the runtime itself (when its API answers) gives the names.

import (
	"os"
	"strconv"
	"strings"
	"sync"
)

// Pod is a Kubernetes pod. Name and Namespace come from the runtime and
// are empty when it did not answer; UID comes from the cgroup path.
type Pod struct {
	Namespace string
	Name      string
	UID       string
}

// Container is what socklife says a socket belongs to.
type Container struct {
	ID      string // the full container id
	Runtime Runtime
	Name    string // from the runtime; "" until it answers
	Pod     Pod    // zero outside Kubernetes
	Cgroup  string // its cgroup v2 path from the hierarchy's root
}

// Names answers what a runtime calls a container. It must not block: it
// answers from what it has, and may fetch in the background for later.
type Names func(rt Runtime, id string) (name string, pod Pod, ok bool)

// maxContainers bounds the attributor's cache (see maxPaths).
const maxContainers = 1 << 16

// Attributor maps cgroup ids to containers, caching by id: the hot path
// (one event) is a map lookup and allocates nothing.
type Attributor struct {
	res   *Resolver
	names Names // nil: ids without names
	// answers counts the names the runtime has given (may be nil): an
	// unnamed container asks again as soon as it grows
	answers func() uint64

	mu   sync.Mutex
	byID map[uint64]*attribution
}

type attribution struct {
	c  Container
	ok bool // c is a container; false: the cgroup is the host's
	// named says the runtime has answered for c (names are not asked again)
	named bool
	// lookups counts Ofs since the runtime was last asked: an unnamed
	// container's events ask it one time in askEvery, not each time (a
	// runtime that is absent answers nothing, forever), or as soon as
	// the runtime has answered anything new (answers past answersSeen)
	lookups     uint32
	answersSeen uint64
}

// askEvery is how often an unnamed container's lookups ask the runtime
// again for the answer its first question started fetching.
const askEvery = 256

// NewAttributor attributes through res, asking names (may be nil) for
// names; answers (may be nil) counts the answers names has had.
func NewAttributor(res *Resolver, names Names, answers func() uint64) *Attributor {
	if answers == nil {
		answers = func() uint64 { return 0 }
	}
	return &Attributor{res: res, names: names, answers: answers, byID: make(map[uint64]*attribution)}
}

// Of is the container of a cgroup id; false for a host cgroup, an unknown
// id, or a nil Attributor (attribution off).
func (a *Attributor) Of(id uint64) (Container, bool) {
	c, ok, _ := a.Lookup(id)
	return c, ok
}

// Lookup is Of, and whether its answer is final: a host cgroup's, or a
// container's the runtime has named (or there is no runtime to ask). A
// caller may keep a final answer and not ask again; one not final must be
// asked again, which is what asks the runtime for the names.
func (a *Attributor) Lookup(id uint64) (c Container, ok, final bool) {
	if a == nil || id == 0 {
		return Container{}, false, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	at := a.byID[id]
	if at == nil {
		// one open_by_handle_at, under the lock: a first sight of a
		// cgroup, after which its answer is a map lookup
		fresh := a.attribute(id)
		if len(a.byID) >= maxContainers {
			clear(a.byID)
		}
		at = &fresh
		a.byID[id] = at
	}
	if !at.ok {
		return Container{}, false, true
	}
	if !at.named && at.c.ID != "" && a.names != nil {
		a.name(at)
	}
	return at.c, true, at.named || at.c.ID == "" || a.names == nil
}

// name asks the runtime for at's names, one lookup in askEvery or as soon
// as it has answered anything new (a.mu held; names never blocks).
func (a *Attributor) name(at *attribution) {
	answers := a.answers()
	at.lookups++
	if at.lookups%askEvery != 1 && answers == at.answersSeen {
		return
	}
	at.answersSeen = answers
	name, pod, ok := a.names(at.c.Runtime, at.c.ID)
	if !ok {
		return
	}
	at.c.Name = name
	if pod.UID == "" {
		pod.UID = at.c.Pod.UID
	}
	at.c.Pod = pod
	at.named = true
}

// AnyContainer reports whether the host runs any container now (see
// Resolver.AnyContainer); false for a nil Attributor.
func (a *Attributor) AnyContainer() bool { return a != nil && a.res.Containers(1) > 0 }

// OfSocket is the container of a socket: the one it was created in
// (sockCgroup, which the socket keeps when it passes to another process),
// else the one of the process that holds it (ownerCgroup). A socket
// belongs to a container when it was made there or is held there.
func (a *Attributor) OfSocket(sockCgroup, ownerCgroup uint64) (Container, bool) {
	if c, ok := a.Of(sockCgroup); ok {
		return c, true
	}
	return a.Of(ownerCgroup)
}

func (a *Attributor) attribute(id uint64) attribution {
	path, ok := a.res.Path(id)
	if !ok {
		return attribution{}
	}
	p, ok := ParsePath(path)
	if !ok {
		return attribution{}
	}
	return attribution{ok: true, c: Container{
		ID: p.ID, Runtime: p.Runtime, Pod: Pod{UID: p.PodUID}, Cgroup: path,
	}}
}

// OfProcess is the container of a running process (see ProcessCgroup);
// false for the host's processes and for a process that has exited.
func (a *Attributor) OfProcess(pid int) (Container, bool) {
	return a.Of(a.ProcessCgroup(pid))
}

// ProcessCgroup is the cgroup v2 id of a running process, by the path
// /proc/PID/cgroup gives ("0::/path"); 0 when it has exited.
func (a *Attributor) ProcessCgroup(pid int) uint64 {
	if a == nil || pid <= 0 {
		return 0
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if path, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "0::"); ok {
			abs, ok := a.res.Abs(path)
			if !ok {
				return 0
			}
			id, err := a.res.ID(abs)
			if err != nil {
				return 0
			}
			return id
		}
	}
	return 0
}

// Matching returns the cgroup ids of the containers keep accepts (see
// Resolver.Matching); none for a nil Attributor.
func (a *Attributor) Matching(keep func(p Path) bool) []uint64 {
	if a == nil {
		return nil
	}
	return a.res.Matching(keep)
}

// Prefetch attributes every container running now, so that the runtimes
// are asked for their names at once (a filter by name needs them before
// the first event).
func (a *Attributor) Prefetch() {
	for _, id := range a.Matching(func(p Path) bool { return p.ID != "" }) {
		a.Of(id)
	}
}
