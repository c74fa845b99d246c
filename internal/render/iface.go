package render

import (
	"net"
	"strconv"
)

// Interfaces names interface indexes, reading the table once, on first use:
// most sockets are bound to no device and never need it.
type Interfaces struct {
	names  map[uint32]string
	loaded bool
}

// Name returns the interface's name, its number if it has none here (a
// socket in another namespace), or "" for index 0.
func (in *Interfaces) Name(index uint32) string {
	if index == 0 || in == nil {
		return ""
	}
	if !in.loaded {
		in.loaded = true
		in.names = map[uint32]string{}
		if ifaces, err := net.Interfaces(); err == nil {
			for _, ifi := range ifaces {
				in.names[uint32(ifi.Index)] = ifi.Name
			}
		}
	}
	if n, ok := in.names[index]; ok {
		return n
	}
	return strconv.FormatUint(uint64(index), 10)
}
