// Package holders keeps, for every listening TCP socket, the processes
// that hold it and those seen accepting on it.
//
// A pre-fork server (nginx, Apache, gunicorn, PostgreSQL) listens in its
// master and accepts in its workers, which inherit the listening fd: `ss
// -tlnp` lists all of them. A connection not accepted yet belongs to the
// listener, that is to every holder; which worker takes it is known only
// at accept(). The process that called listen() is the one holder that
// never accepts. nginx with two workers, as a Set:
//
//	[{PID:3121 Comm:nginx Accepts:true} {PID:3122 Comm:nginx Accepts:true} {PID:3120 Comm:nginx}]
//
// Holders come from /proc scans (Load), acceptors from accept events
// (Accepted). A Registry is safe for concurrent use: one goroutine may
// feed it while another looks listeners up for every event.
package holders

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// Key names one listening socket: its netns and socket inode, as
// sock_diag reports them and the BPF programs read them.
type Key struct {
	Netns uint32
	Inode uint64
}

// Holder is one process holding a listener; the tracer's type, so that
// an event can carry a Set's holders as they are.
type Holder = tracer.Holder

// Set is a listener's holders, those seen accepting first, then by pid. A
// Set is never changed once made: readers keep it without a lock.
type Set struct {
	Holders []Holder
	// Scanned says a /proc scan found the holders; false when only events
	// named them (an acceptor of a listener no scan has listed yet).
	Scanned bool
}

// Acceptors says how many of the holders were seen accepting: they come
// first.
func (s *Set) Acceptors() int {
	if s == nil {
		return 0
	}
	n := 0
	for n < len(s.Holders) && s.Holders[n].Accepts {
		n++
	}
	return n
}

// Has reports whether pid holds the listener.
func (s *Set) Has(pid uint32) bool {
	if s == nil {
		return false
	}
	return slices.ContainsFunc(s.Holders, func(h Holder) bool { return h.PID == pid })
}

type acceptor struct {
	comm string
	seen time.Time
}

type listener struct {
	local     netip.AddrPort // the bound address, unmapped
	scanned   []Holder       // from the last scan that listed it, by pid
	scannedAt time.Time
	acceptors map[uint32]acceptor
	set       *Set // scanned and acceptors merged; nil: to remake
	group     *Set // the SO_REUSEPORT group's union; nil: to remake
}

type groupKey struct {
	netns uint32
	local netip.AddrPort
}

// Registry is every listener's holders.
type Registry struct {
	mu        sync.RWMutex
	listeners map[Key]*listener
	groups    map[groupKey][]Key
	missed    map[Key]bool
}

// New returns an empty Registry.
func New() *Registry {
	return &Registry{listeners: map[Key]*listener{}, groups: map[groupKey][]Key{}, missed: map[Key]bool{}}
}

// Load takes the listeners of a sock_diag dump with processes attached,
// scanned at (the time the /proc scan started). A listener of the dump
// gets exactly the holders the scan found, plus acceptors seen since the
// scan started; an acceptor seen before that and no longer holding it has
// let go of it (an nginx worker replaced at reload). Listeners the dump
// does not have are forgotten unless partial (a dump of only some
// namespaces or inodes).
func (r *Registry) Load(socks []snapshot.Socket, scanned time.Time, partial bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[Key]bool{}
	for i := range socks {
		s := &socks[i]
		if s.Protocol != snapshot.TCP || s.State != tcpstate.Listen || s.Inode == 0 {
			continue
		}
		k := Key{s.Netns, s.Inode}
		seen[k] = true
		delete(r.missed, k)
		l := r.listener(k, netip.AddrPortFrom(s.Local.Addr().Unmap(), s.Local.Port()))
		l.scanned = l.scanned[:0]
		for _, p := range s.Processes {
			// one entry per process, not per fd (dup, fork)
			if !slices.ContainsFunc(l.scanned, func(h Holder) bool { return h.PID == uint32(p.PID) }) {
				l.scanned = append(l.scanned, Holder{PID: uint32(p.PID), Comm: p.Comm})
			}
		}
		l.scannedAt = scanned
		for pid, a := range l.acceptors {
			if a.seen.Before(scanned) && !slices.ContainsFunc(l.scanned, func(h Holder) bool { return h.PID == pid }) {
				delete(l.acceptors, pid)
			}
		}
		r.changed(k, l)
	}
	if partial {
		return
	}
	for k, l := range r.listeners {
		if !seen[k] {
			r.forget(k, l)
		}
	}
}

// listener finds or makes k's entry; local names it in its group.
func (r *Registry) listener(k Key, local netip.AddrPort) *listener {
	l := r.listeners[k]
	if l == nil {
		l = &listener{local: local, acceptors: map[uint32]acceptor{}}
		r.listeners[k] = l
	}
	if local.IsValid() && !l.local.IsValid() {
		l.local = local
	}
	if l.local.IsValid() {
		g := groupKey{k.Netns, l.local}
		if !slices.Contains(r.groups[g], k) {
			r.groups[g] = append(r.groups[g], k)
		}
	}
	return l
}

// changed drops the merged sets of k and of its group.
func (r *Registry) changed(k Key, l *listener) {
	l.set = nil
	for _, m := range r.groups[groupKey{k.Netns, l.local}] {
		if ml := r.listeners[m]; ml != nil {
			ml.group = nil
		}
	}
	l.group = nil
}

func (r *Registry) forget(k Key, l *listener) {
	r.changed(k, l)
	g := groupKey{k.Netns, l.local}
	if keys := slices.DeleteFunc(r.groups[g], func(m Key) bool { return m == k }); len(keys) > 0 {
		r.groups[g] = keys
	} else {
		delete(r.groups, g)
	}
	delete(r.listeners, k)
}

// Accepted records pid taking a connection off listener k at t. comm ""
// is a pid known alone (serve's accept counts in the kernel): it leaves
// the name a scan gives, and asks for a scan if none has listed pid.
func (r *Registry) Accepted(k Key, pid uint32, comm string, t time.Time) {
	r.mu.RLock()
	l := r.listeners[k]
	var known bool
	if l != nil {
		a, ok := l.acceptors[pid]
		known = ok && (comm == "" || a.comm == comm)
	}
	r.mu.RUnlock()
	if known {
		return // the common case: the same worker again
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l = r.listener(k, netip.AddrPort{})
	// a pid known alone that no scan listed (a worker forked since) is
	// named by the next scan, which this asks for
	if l.scannedAt.IsZero() || comm == "" && !slices.ContainsFunc(l.scanned, func(h Holder) bool { return h.PID == pid }) {
		r.missed[k] = true
	}
	l.acceptors[pid] = acceptor{comm: comm, seen: t}
	r.changed(k, l)
}

// Listener returns k's holders, nil if nothing is known of k yet (which
// marks it for the next scan: Missed).
func (r *Registry) Listener(k Key) *Set {
	return r.cached(k, func(l *listener) **Set { return &l.set },
		func(l *listener) *Set { return merge([]*listener{l}) })
}

// Group returns the holders of k and of the listeners sharing its address
// and port (a SO_REUSEPORT group): a child's listener as the BPF side
// names it is one of the group, while the kernel may have queued the child
// on any. For a listener alone, the same as Listener.
func (r *Registry) Group(k Key) *Set {
	return r.cached(k, func(l *listener) **Set { return &l.group }, func(l *listener) *Set {
		var members []*listener
		for _, m := range r.groups[groupKey{k.Netns, l.local}] {
			if ml := r.listeners[m]; ml != nil {
				members = append(members, ml)
			}
		}
		if len(members) == 0 {
			members = []*listener{l}
		}
		return merge(members)
	})
}

// cached returns the Set slot(l) of k's listener, made by build (under
// the write lock) if changed dropped it; nil, marking the miss, if k is
// unknown. The common case takes only the read lock.
func (r *Registry) cached(k Key, slot func(*listener) **Set, build func(*listener) *Set) *Set {
	r.mu.RLock()
	var set *Set
	if l := r.listeners[k]; l != nil {
		set = *slot(l)
	}
	r.mu.RUnlock()
	if set != nil {
		return set
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.listeners[k]
	if l == nil {
		r.missed[k] = true
		return nil
	}
	if p := slot(l); *p == nil {
		*p = build(l)
	}
	return *slot(l)
}

// Forget drops what is known of listener k: a caller whose dumps cover
// only some namespaces (Load partial) says so when k has gone.
func (r *Registry) Forget(k Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.listeners[k]; l != nil {
		r.forget(k, l)
	}
	delete(r.missed, k)
}

// merge makes the Set of some listeners: holders and acceptors, one entry
// per pid, acceptors first.
func merge(ls []*listener) *Set {
	set := &Set{Scanned: true}
	add := func(h Holder) {
		if i := slices.IndexFunc(set.Holders, func(x Holder) bool { return x.PID == h.PID }); i >= 0 {
			set.Holders[i].Accepts = set.Holders[i].Accepts || h.Accepts
			if h.Accepts && h.Comm != "" {
				set.Holders[i].Comm = h.Comm // the newer name
			}
			return
		}
		set.Holders = append(set.Holders, h)
	}
	for _, l := range ls {
		set.Scanned = set.Scanned && !l.scannedAt.IsZero()
		for _, h := range l.scanned {
			add(h)
		}
		for pid, a := range l.acceptors {
			add(Holder{PID: pid, Comm: a.comm, Accepts: true})
		}
	}
	slices.SortFunc(set.Holders, func(a, b Holder) int {
		if a.Accepts != b.Accepts { // acceptors first
			if a.Accepts {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.PID, b.PID)
	})
	return set
}

// Missed takes the listeners looked up or accepted on since the last call
// that no scan has listed: the next scan should look for them.
func (r *Registry) Missed() []Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Key, 0, len(r.missed))
	for k := range r.missed {
		out = append(out, k)
	}
	clear(r.missed)
	return out
}

// Refresh lists the listeners of every network namespace and scans /proc
// for their holders, then loads them. It returns the listeners (with their
// processes) for callers that pass them on.
func (r *Registry) Refresh(ctx context.Context) ([]snapshot.Socket, error) {
	start := time.Now()
	res, err := snapshot.Dump(ctx, snapshot.Options{TCP: true, States: tcpstate.Of(tcpstate.Listen), AllNetns: true})
	if err != nil {
		return nil, fmt.Errorf("listing listeners: %w", err)
	}
	if _, err := snapshot.AttachProcesses(res.Sockets); err != nil {
		return nil, fmt.Errorf("finding the holders of listeners: %w", err)
	}
	r.Load(res.Sockets, start, false)
	return res.Sockets, nil
}

// Keep refreshes the registry until ctx ends: every period, and within
// soon of a lookup that found nothing (a listener made since the last
// scan: its workers fork after listen()). A listener a scan could not
// place is not rescanned for before the next periodic refresh. onLoad, if
// set, gets the listeners of each refresh; errors go to onErr.
func (r *Registry) Keep(ctx context.Context, period, soon time.Duration, onLoad func([]snapshot.Socket), onErr func(error)) {
	tick := time.NewTicker(soon)
	defer tick.Stop()
	tried := map[Key]bool{}
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		due := time.Since(last) >= period
		if due {
			clear(tried)
		}
		for _, k := range r.Missed() {
			if !tried[k] {
				tried[k] = true
				due = true
			}
		}
		if !due {
			continue
		}
		last = time.Now()
		socks, err := r.Refresh(ctx)
		switch {
		case err != nil && ctx.Err() == nil && onErr != nil:
			onErr(err)
		case err == nil && onLoad != nil:
			onLoad(socks)
		}
	}
}
