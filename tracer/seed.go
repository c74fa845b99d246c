package tracer

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// ListenerOwner names the process behind a listening port, for a listener
// that was listening before the tracer attached.
type ListenerOwner struct {
	Netns uint32
	Addr  netip.Addr // the bound address; 0.0.0.0 or :: for a wildcard
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
		// as the BPF side holds a tuple: IPv4 v4-mapped
		key := socklifeListenKey{Netns: o.Netns, Port: o.Port, Addr: o.Addr.As16()}
		var val socklifeListenInfo // Sk 0: not the BPF side's own entry
		val.Owner.Tgid = o.Owner.PID
		val.Owner.CgroupId = o.Owner.CgroupID
		copy(val.Owner.Comm[:], o.Owner.Comm)
		err := m.Update(&key, &val, ebpf.UpdateNoExist)
		if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			errs = append(errs, fmt.Errorf("listener %v in netns %d: %w", netip.AddrPortFrom(o.Addr, o.Port), o.Netns, err))
		}
	}
	return errors.Join(errs...)
}
