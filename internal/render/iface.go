package render

import (
	"net"
	"strconv"

	"github.com/socklife/socklife/snapshot"
)

// Interfaces names interface indexes, each in its socket's network
// namespace (an index means a different device in every namespace: 3 is
// ifb1 here and v0 in a container). It reads a namespace's table once, on
// first use, from a thread moved into that namespace: most sockets are
// bound to no device and never need it. The zero value is ready to use.
type Interfaces struct {
	self     uint32
	selfRead bool
	names    map[uint32]map[uint32]string // netns inode -> index -> name
}

// Name returns the name of interface index in the caller's namespace.
func (in *Interfaces) Name(index uint32) string {
	if in == nil {
		return ""
	}
	return in.In(in.selfNetns(), index)
}

func (in *Interfaces) selfNetns() uint32 {
	if !in.selfRead {
		in.selfRead = true
		in.self, _ = snapshot.CurrentNetns()
	}
	return in.self
}

// In returns the name of interface index in the network namespace with
// inode netns (0: the caller's), its number if it has none there (or the
// namespace is gone), or "" for index 0 or a nil Interfaces.
func (in *Interfaces) In(netns, index uint32) string {
	if index == 0 || in == nil {
		return ""
	}
	table, ok := in.names[netns]
	if !ok {
		table = map[uint32]string{}
		read := func() error {
			ifaces, err := net.Interfaces()
			for _, ifi := range ifaces {
				table[uint32(ifi.Index)] = ifi.Name
			}
			return err
		}
		if netns == in.selfNetns() || netns == 0 {
			read()
		} else {
			snapshot.RunInNetns(netns, read)
		}
		if in.names == nil {
			in.names = map[uint32]map[uint32]string{}
		}
		in.names[netns] = table
	}
	if n, ok := table[index]; ok {
		return n
	}
	return strconv.FormatUint(uint64(index), 10)
}
