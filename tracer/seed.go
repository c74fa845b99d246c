package tracer

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// ListenerOwner names the process behind a listening port, for a listener
// that was listening before the tracer attached.
type ListenerOwner struct {
	Netns uint32
	Port  uint16
	Owner Task
}

// SeedListeners tells the BPF side who owns listeners older than the
// tracer. A connection's first two transitions on the server side
// (LISTEN->SYN_RECV, SYN_RECV->ESTABLISHED) run in softirq and take their
// owner from the listener's entry, which the BPF side makes when it sees a
// socket enter LISTEN, or at the listener's first accept: without a seed,
// a running service's handshakes show no owner until then.
//
// Call it after New, from a listing made after New returned (a listener
// made in between is then in one or the other); entries the BPF side has
// made stay as they are.
func (t *Tracer) SeedListeners(owners []ListenerOwner) error {
	m := t.maps.Maps["listeners"]
	var errs []error
	for _, o := range owners {
		key := socklifeListenKey{Netns: o.Netns, Port: o.Port}
		var val socklifeListenInfo // Sk 0: not the BPF side's own entry
		val.Owner.Tgid = o.Owner.PID
		val.Owner.CgroupId = o.Owner.CgroupID
		copy(val.Owner.Comm[:], o.Owner.Comm)
		err := m.Update(&key, &val, ebpf.UpdateNoExist)
		if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			errs = append(errs, fmt.Errorf("listener %d/%d: %w", o.Netns, o.Port, err))
		}
	}
	return errors.Join(errs...)
}
