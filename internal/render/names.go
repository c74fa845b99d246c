package render

import (
	"strconv"

	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/snapshot"
)

// Names turns the numbers the kernel gives into names a user knows: the
// device of a link-local zone, the container of a cgroup id. The zero
// value names devices and no containers; a nil *Names names nothing.
// Not safe for concurrent use: each output goroutine keeps its own.
type Names struct {
	Ifaces Interfaces
	// Containers attributes cgroup ids; nil: no container attribution.
	Containers *container.Attributor
	// Netns names network namespaces by what lives in them; nil: none.
	Netns *container.NetnsNames
	// ContainerColumns adds CONTAINER and POD to tables whose columns are
	// fixed before the first row (trace's).
	ContainerColumns bool

	procs map[int32]uint64 // cgroup ids by pid, for one snapshot's holders
	// containerJSON holds each container's JSON object, by the cgroup id
	// it was found by (a path would be hashed, 150 bytes, per event):
	// trace and record write the same few hundred bytes for every event
	// of a container, escaped once
	containerJSON map[uint64]cachedJSON
	// hostIDs are cgroup ids found to be the host's: most events' are,
	// and the answer cannot change, so they skip the attributor's lock
	hostIDs map[uint64]bool
	// netnsNames keeps what Netns answered: a namespace seen once keeps
	// its answer (container.NetnsNames.Lookup), so the lock is skipped too
	netnsNames    map[uint32]string
	lastContainer lastContainer
}

type cachedJSON struct {
	c    container.Container // what json says: names may come later
	json []byte
}

// In names interface index in the network namespace netns (see
// Interfaces.In).
func (n *Names) In(netns, index uint32) string {
	if n == nil {
		return ""
	}
	return n.Ifaces.In(netns, index)
}

// Container is the container of a socket (see Attributor.OfSocket).
func (n *Names) Container(sockCgroup, ownerCgroup uint64) (container.Container, bool) {
	_, c, ok, _ := n.container(sockCgroup, ownerCgroup)
	return c, ok
}

// container is Container, the cgroup id it was found by, and whether
// the answer is final (see container.Attributor.Lookup).
func (n *Names) container(sockCgroup, ownerCgroup uint64) (uint64, container.Container, bool, bool) {
	if n == nil || n.Containers == nil {
		return 0, container.Container{}, false, true
	}
	for _, id := range [2]uint64{sockCgroup, ownerCgroup} {
		if id == 0 || n.hostIDs[id] {
			continue
		}
		if c, ok, final := n.Containers.Lookup(id); ok {
			return id, c, true, final
		}
		if n.hostIDs == nil || len(n.hostIDs) >= maxHostIDs {
			n.hostIDs = make(map[uint64]bool)
		}
		n.hostIDs[id] = true
	}
	return 0, container.Container{}, false, true
}

// maxHostIDs bounds Names' set of the host's cgroup ids.
const maxHostIDs = 4096

// SocketContainer is the container of a snapshot's socket: the one it was
// created in (sock_diag's cgroup id, TCP and UDP on 5.8+), else the one of
// a process holding it (Unix sockets, older kernels).
func (n *Names) SocketContainer(s *snapshot.Socket) (container.Container, bool) {
	if n == nil || n.Containers == nil {
		return container.Container{}, false
	}
	if c, ok := n.Containers.Of(s.CgroupID); ok {
		return c, true
	}
	for _, p := range s.Processes {
		id, seen := n.procs[p.PID]
		if !seen {
			id = n.Containers.ProcessCgroup(int(p.PID))
			if n.procs == nil {
				n.procs = make(map[int32]uint64)
			}
			n.procs[p.PID] = id
		}
		if c, ok := n.Containers.Of(id); ok {
			return c, true
		}
	}
	return container.Container{}, false
}

// NetnsName is what lives in a network namespace (container.NetnsNames).
func (n *Names) NetnsName(inode uint32) string {
	if n == nil || n.Netns == nil {
		return ""
	}
	name, seen := n.netnsNames[inode]
	if !seen {
		var final bool
		if name, final = n.Netns.Lookup(inode); final {
			if n.netnsNames == nil || len(n.netnsNames) >= maxCachedNetns {
				n.netnsNames = make(map[uint32]string)
			}
			n.netnsNames[inode] = name
		}
	}
	return name
}

// maxCachedNetns bounds Names' copy of the namespace names.
const maxCachedNetns = 4096

// appendNetnsName appends `,"netns_name":"..."` when something names the
// namespace.
func appendNetnsName(b []byte, names *Names, netns uint32) []byte {
	name := names.NetnsName(netns)
	if name == "" {
		return b
	}
	b = append(b, `,"netns_name":`...)
	return appendJSONString(b, name)
}

// appendNetnsCell appends a table's namespace cell: its inode, and what
// lives in it in brackets, without a space (one cell, one word).
func appendNetnsCell(b []byte, names *Names, netns uint32) []byte {
	b = strconv.AppendUint(b, uint64(netns), 10)
	if name := names.NetnsName(netns); name != "" {
		b = append(b, '(')
		b = appendTerm(b, name)
		b = append(b, ')')
	}
	return b
}

// appendContainer appends the `,"container":{...}` of a socket (nothing
// for the host's), from the cache when the container is unchanged.
func (n *Names) appendContainer(b []byte, sockCgroup, ownerCgroup uint64) []byte {
	if n == nil || n.Containers == nil {
		return b
	}
	if last := &n.lastContainer; last.sock == sockCgroup && last.owner == ownerCgroup && (last.final || last.uses < recheckNames) {
		last.uses++
		return append(b, last.json...)
	}
	id, c, ok, final := n.container(sockCgroup, ownerCgroup)
	var json []byte
	if ok {
		if cached, hit := n.containerJSON[id]; hit && cached.c == c {
			json = cached.json
		} else {
			if n.containerJSON == nil || len(n.containerJSON) >= maxCachedContainers {
				n.containerJSON = make(map[uint64]cachedJSON)
			}
			json = appendContainerJSON(nil, c, true)
			n.containerJSON[id] = cachedJSON{c, json}
		}
	}
	n.lastContainer = lastContainer{sock: sockCgroup, owner: ownerCgroup, final: final, json: json}
	return append(b, json...)
}

// lastContainer is the container JSON of the last event's pair of cgroup
// ids: a run of events from one container or one host process (a busy
// server's) skips the lookups, the attributor's lock among them. An
// answer not final (the runtime has not named the container yet) is
// looked up again every recheckNames events, so names show up that many
// events late at most.
type lastContainer struct {
	sock, owner uint64
	final       bool
	uses        int
	json        []byte // nil: the host's
}

const recheckNames = 64

// maxCachedContainers bounds Names' JSON cache: a node runs a few hundred
// containers; more than this over a run starts the cache again.
const maxCachedContainers = 4096
