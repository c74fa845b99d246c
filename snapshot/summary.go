package snapshot

import (
	"cmp"
	"slices"

	"github.com/socklife/socklife/internal/tcpstate"
)

// Summary counts sockets per protocol and state, like ss -s, and ranks the
// processes holding the most CLOSE-WAIT sockets: a socket stays in CLOSE-WAIT
// until its owner calls close(), so a growing count there is a leak in that
// process, not in the network.
type Summary struct {
	Total     int
	Protocols []ProtocolCount
	CloseWait []ProcessCount // most first
}

// ProtocolCount is the number of sockets of one protocol, by state.
type ProtocolCount struct {
	Protocol Protocol
	Total    int
	States   [tcpstate.Max]int
}

// ProcessCount is how many CLOSE-WAIT sockets one process holds. PID 0 counts
// sockets whose owner is unknown (process attribution off or not permitted).
type ProcessCount struct {
	PID   int32
	Comm  string
	Count int
}

// Summarize counts socks. A socket shared by several processes counts once
// for each, since each of them would have to close it.
func Summarize(socks []Socket, topN int) Summary {
	var sum Summary
	byProto := map[Protocol]*ProtocolCount{}
	type owner struct {
		pid  int32
		comm string
	}
	closeWait := map[owner]int{}
	for i := range socks {
		s := &socks[i]
		pc := byProto[s.Protocol]
		if pc == nil {
			pc = &ProtocolCount{Protocol: s.Protocol}
			byProto[s.Protocol] = pc
		}
		pc.Total++
		if s.State < tcpstate.Max {
			pc.States[s.State]++
		}
		sum.Total++
		if s.Protocol != TCP || s.State != tcpstate.CloseWait {
			continue
		}
		if len(s.Processes) == 0 {
			closeWait[owner{}]++
		}
		seen := map[int32]bool{}
		for _, p := range s.Processes {
			if !seen[p.PID] {
				seen[p.PID] = true
				closeWait[owner{p.PID, p.Comm}]++
			}
		}
	}
	for _, pc := range byProto {
		sum.Protocols = append(sum.Protocols, *pc)
	}
	slices.SortFunc(sum.Protocols, func(a, b ProtocolCount) int { return cmp.Compare(a.Protocol, b.Protocol) })
	for o, n := range closeWait {
		sum.CloseWait = append(sum.CloseWait, ProcessCount{PID: o.pid, Comm: o.comm, Count: n})
	}
	slices.SortFunc(sum.CloseWait, func(a, b ProcessCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.PID, b.PID))
	})
	if topN > 0 && len(sum.CloseWait) > topN {
		sum.CloseWait = sum.CloseWait[:topN]
	}
	return sum
}

// Include adds a zero count for each of protos the summary lacks, so that
// "no UDP sockets" reads as 0 rather than as a missing key.
func (sum *Summary) Include(protos ...Protocol) {
	for _, p := range protos {
		if !slices.ContainsFunc(sum.Protocols, func(pc ProtocolCount) bool { return pc.Protocol == p }) {
			sum.Protocols = append(sum.Protocols, ProtocolCount{Protocol: p})
		}
	}
	slices.SortFunc(sum.Protocols, func(a, b ProtocolCount) int { return cmp.Compare(a.Protocol, b.Protocol) })
}
