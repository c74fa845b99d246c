package holders

import (
	"cmp"
	"slices"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// Seeds turns a snapshot of TCP sockets (with processes attached) into
// what the tracer is told of sockets older than itself: the listeners with
// their holders (tracer.Tracer.SeedListeners) and every socket's owner by
// cookie (tracer.Tracer.SeedOwners), so that events of those sockets name
// the same owners as a table loaded from the same snapshot. A socket whose
// owner the /proc scan did not find is left out; where several processes
// hold one, the first (lowest pid) stands for them.
func Seeds(socks []snapshot.Socket) ([]tracer.ListenerSeed, []tracer.OwnerSeed) {
	var listeners []tracer.ListenerSeed
	owners := make([]tracer.OwnerSeed, 0, len(socks))
	for i := range socks {
		s := &socks[i]
		if s.Protocol != snapshot.TCP || len(s.Processes) == 0 {
			continue
		}
		p := s.Processes[0]
		owner := tracer.Task{PID: uint32(p.PID), Comm: p.Comm, CgroupID: s.CgroupID}
		if s.Cookie != 0 {
			owners = append(owners, tracer.OwnerSeed{Cookie: s.Cookie, Owner: owner})
		}
		if s.State != tcpstate.Listen {
			continue
		}
		holders := make([]uint32, 0, len(s.Processes))
		for _, h := range s.Processes {
			holders = append(holders, uint32(h.PID))
		}
		listeners = append(listeners, tracer.ListenerSeed{
			Netns: s.Netns, Addr: s.Local.Addr(), Port: s.Local.Port(), Inode: s.Inode,
			Owner: owner, Holders: holders,
		})
	}
	return listeners, owners
}

// Brief is what seeding needs of an older socket that is kept no further:
// its owner is found by Inode, told by Cookie, and carries CgroupID. A
// host with a million sockets holds a million of these (24 bytes each)
// where it would hold a million snapshot.Sockets (208 bytes, and their
// processes).
type Brief struct {
	Inode, Cookie, CgroupID uint64
}

// SortOwners orders owners by inode, then pid and fd: each socket's owners
// together, in the order snapshot.AttachProcesses gives them.
func SortOwners(owners []snapshot.Owner) {
	slices.SortFunc(owners, func(a, b snapshot.Owner) int {
		return cmp.Or(cmp.Compare(a.Inode, b.Inode), cmp.Compare(a.PID, b.PID), cmp.Compare(a.FD, b.FD))
	})
}

// Processes are inode's owners in owners sorted by SortOwners, as
// snapshot.AttachProcesses would attach them; nil for none.
func Processes(sorted []snapshot.Owner, inode uint64) []snapshot.Process {
	var out []snapshot.Process
	for _, o := range ownersOf(sorted, inode) {
		out = append(out, o.Process)
	}
	return out
}

// ownersOf is inode's run in sorted, without copying it.
func ownersOf(sorted []snapshot.Owner, inode uint64) []snapshot.Owner {
	i, _ := slices.BinarySearchFunc(sorted, inode, func(o snapshot.Owner, inode uint64) int { return cmp.Compare(o.Inode, inode) })
	j := i
	for j < len(sorted) && sorted[j].Inode == inode {
		j++
	}
	return sorted[i:j]
}

// OwnerSeeds are Seeds' owners of sockets known only in brief: each
// socket's first owner (lowest pid, then fd) in owners sorted by
// SortOwners. Sockets no process holds are left out.
func OwnerSeeds(briefs []Brief, sorted []snapshot.Owner) []tracer.OwnerSeed {
	seeds := make([]tracer.OwnerSeed, 0, len(briefs))
	for _, b := range briefs {
		if b.Cookie == 0 {
			continue
		}
		if o := ownersOf(sorted, b.Inode); len(o) > 0 {
			seeds = append(seeds, tracer.OwnerSeed{Cookie: b.Cookie, Owner: tracer.Task{PID: uint32(o[0].PID), Comm: o[0].Comm, CgroupID: b.CgroupID}})
		}
	}
	return seeds
}
