package live

import (
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// ListenerOwners lists the owners of the TCP listeners in socks (a snapshot
// with processes attached), for tracer.Tracer.SeedListeners. A listener
// whose owner the /proc scan did not find is left out.
func ListenerOwners(socks []snapshot.Socket) []tracer.ListenerOwner {
	var out []tracer.ListenerOwner
	for i := range socks {
		s := &socks[i]
		if s.Protocol != snapshot.TCP || s.State != tcpstate.Listen || len(s.Processes) == 0 {
			continue
		}
		p := s.Processes[0]
		out = append(out, tracer.ListenerOwner{
			Netns: s.Netns, Addr: s.Local.Addr(), Port: s.Local.Port(),
			Owner: tracer.Task{PID: uint32(p.PID), Comm: p.Comm, CgroupID: s.CgroupID},
		})
	}
	return out
}
