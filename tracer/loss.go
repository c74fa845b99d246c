package tracer

import (
	"github.com/cilium/ebpf/btf"
)

// Loss is what never reached the reader, by cause. A run is complete only
// when Total is 0 (and RecursionKnown).
type Loss struct {
	// RingFull counts events the programs could not reserve ring space for.
	RingFull uint64
	// Recursion counts program runs the kernel skipped because the same
	// program was already running on that CPU (a softirq changing a
	// socket's state while a close in process context was being traced):
	// the kernel's recursion_misses of every attached program. A skipped
	// run may have been one the filters would have dropped; it counts
	// here all the same, as nobody can tell.
	Recursion uint64
	// RecursionKnown is false where the kernel does not count recursion
	// misses (before 5.12): Recursion is then 0 whatever happened.
	RecursionKnown bool
	// Undecodable counts records the decoder refused.
	Undecodable uint64
	// ListenerAcceptsFull counts accepts on listeners Aggregate's map had
	// no room for: ListenerAccepts is short by as many.
	ListenerAcceptsFull uint64
}

// Total is every event lost, whatever the cause.
func (l Loss) Total() uint64 {
	return l.RingFull + l.Recursion + l.Undecodable + l.ListenerAcceptsFull
}

// Loss reads the loss counters now: the ring's in the BPF map, the
// programs' in the kernel's per-program stats.
func (t *Tracer) Loss() Loss {
	l := Loss{Undecodable: t.badRecs, RecursionKnown: t.recursionKnown}
	l.RingFull = t.lost(socklifeLostSlotLOST_RING)
	l.ListenerAcceptsFull = t.lost(socklifeLostSlotLOST_LISTENER_ACCEPTS)
	for _, c := range t.progs {
		for _, p := range c.Programs {
			// Stats is one BPF_OBJ_GET_INFO_BY_FD; recursion misses are
			// counted whether or not kernel.bpf_stats_enabled is set.
			if st, err := p.Stats(); err == nil {
				l.Recursion += st.RecursionMisses
			}
		}
	}
	return l
}

// lost sums one slot of the lost map over CPUs.
func (t *Tracer) lost(slot socklifeLostSlot) uint64 {
	var perCPU []uint64
	var n uint64
	if err := t.maps.Lost.Lookup(uint32(slot), &perCPU); err == nil {
		for _, v := range perCPU {
			n += v
		}
	}
	return n
}

// countsRecursion says whether this kernel reports its programs'
// recursion misses: struct bpf_prog_info has recursion_misses (5.12+).
func countsRecursion(cache *btf.Cache) bool {
	spec, err := cache.Kernel()
	if err != nil {
		return false
	}
	var info *btf.Struct
	if err := spec.TypeByName("bpf_prog_info", &info); err != nil {
		return false
	}
	for _, m := range info.Members {
		if m.Name == "recursion_misses" {
			return true
		}
	}
	return false
}
