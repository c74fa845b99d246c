package tracer

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
)

// ListenerSeed names a listener that was listening before the tracer
// attached: who owns it and who holds it.
type ListenerSeed struct {
	Netns uint32
	Addr  netip.Addr // the bound address; 0.0.0.0 or :: for a wildcard
	Port  uint16
	Inode uint64 // its socket's inode (sock_diag's idiag_inode)
	// Owner stands for the listener on its children's handshake events
	// until one is accepted; Holders are the pids of every process
	// holding its fd (a pre-fork server's master and workers).
	Owner   Task
	Holders []uint32
}

// SeedListeners tells the BPF side about listeners older than the tracer.
// A connection's first two transitions on the server side
// (LISTEN->SYN_RECV, SYN_RECV->ESTABLISHED) run in softirq and take their
// owner, listener inode and, with Options.PID, whether that process holds
// the listener (and so may be the one to accept them) from the listener's
// entry, which the BPF side makes when it sees a socket enter LISTEN:
// without a seed, a running service's handshakes name no one, and a worker
// of a pre-fork server misses them under --pid.
//
// Call it after New, from a listing made after New returned (a listener
// made in between is then in one or the other); an entry the BPF side made
// keeps its owner, and gains Options.PID as a holder if the seed says so.
// Calling it again with a newer listing (holders change as servers fork)
// updates the same way.
func (t *Tracer) SeedListeners(seeds []ListenerSeed) error {
	m := t.maps.Listeners
	var errs []error
	for _, s := range seeds {
		// as the BPF side holds a tuple: IPv4 v4-mapped
		key := socklifeListenKey{Netns: s.Netns, Port: s.Port, Addr: s.Addr.As16()}
		held := t.filterPID != 0 && slices.Contains(s.Holders, t.filterPID)
		var val socklifeListenInfo // Sk 0: the BPF side learns it at the first accept
		val.Ino = s.Inode
		val.Owner = wireTask(s.Owner)
		val.HeldByFilter = boolByte(held)
		err := m.Update(&key, &val, ebpf.UpdateNoExist)
		if errors.Is(err, ebpf.ErrKeyExist) {
			err = nil
			if held {
				err = t.markHeld(m, &key)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("listener %v in netns %d: %w", netip.AddrPortFrom(s.Addr, s.Port), s.Netns, err))
		}
	}
	return errors.Join(errs...)
}

// markHeld sets held_by_filter on an entry the BPF side may be updating
// too: its own updates replace whole entries, so this one can only lose to
// a newer listen() on the same address, which sets the flag itself when
// the filtered process made it.
func (t *Tracer) markHeld(m *ebpf.Map, key *socklifeListenKey) error {
	var cur socklifeListenInfo
	if err := m.Lookup(key, &cur); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		return err
	}
	if cur.HeldByFilter != 0 {
		return nil
	}
	cur.HeldByFilter = 1
	if err := m.Update(key, &cur, ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// OwnerSeed names the owner of a socket older than the tracer, by the
// cookie sock_diag reported for it.
type OwnerSeed struct {
	Cookie uint64
	Owner  Task
}

// MaxOwnerSeeds is how many older sockets' owners the BPF side keeps
// (Options.MaxSockets): of more seeds, SeedOwners sends only the last.
func (t *Tracer) MaxOwnerSeeds() int { return int(t.maps.Seeded.MaxEntries()) }

// SeedOwners tells the BPF side who owns sockets older than the tracer, so
// that their transitions in softirq (a peer's FIN: ESTABLISHED->CLOSE_WAIT,
// LAST_ACK->CLOSE) name their owner (OwnerSnapshot) as a table built from
// the same snapshot does. sock_diag generated each dumped socket's cookie,
// which the BPF side reads from the sock at the socket's first event.
// Of more seeds than Options.MaxSockets only the last are sent: the LRU
// map would evict the others as the later ones went in.
func (t *Tracer) SeedOwners(seeds []OwnerSeed) error {
	m := t.maps.Seeded
	if n := t.MaxOwnerSeeds(); len(seeds) > n {
		seeds = seeds[len(seeds)-n:]
	}
	if len(seeds) == 0 {
		return nil
	}
	keys := make([]uint64, 0, len(seeds))
	vals := make([]socklifeTaskId, 0, len(seeds))
	for _, s := range seeds {
		if s.Cookie == 0 {
			continue
		}
		keys = append(keys, s.Cookie)
		vals = append(vals, wireTask(s.Owner))
	}
	// one syscall for all (hash maps have batch updates since 5.6)
	if _, err := m.BatchUpdate(keys, vals, nil); err != nil {
		return fmt.Errorf("seeding the owners of %d older sockets: %w", len(keys), err)
	}
	return nil
}

func wireTask(t Task) socklifeTaskId {
	w := socklifeTaskId{CgroupId: t.CgroupID, Tgid: t.PID}
	copy(w.Comm[:], t.Comm)
	return w
}
