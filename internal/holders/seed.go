package holders

import (
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
