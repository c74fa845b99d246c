package snapshot

import (
	"cmp"
	"net"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
)

// Scope says how far beyond the host an exposed socket can be reached.
type Scope uint8

const (
	// Wildcard: bound to 0.0.0.0 or ::, so reachable on every interface,
	// including ones added later.
	Wildcard Scope = iota + 1
	// Address: bound to one interface's address.
	Address
	// LinkLocal: bound to a link-local address, reachable only on that link.
	LinkLocal
)

func (s Scope) String() string {
	switch s {
	case Wildcard:
		return "wildcard"
	case Address:
		return "address"
	case LinkLocal:
		return "link-local"
	}
	return "?"
}

// Exposure is a listening TCP socket or a bound UDP socket that accepts
// traffic from beyond loopback.
type Exposure struct {
	Socket *Socket
	Scope  Scope
	// Interface holds the bound address (or the SO_BINDTODEVICE device);
	// empty for wildcards and when the address belongs to no interface of
	// this namespace.
	Interface string
	// IPv4 and IPv6 say which IP versions reach the socket: an IPv6
	// socket bound to [::] with IPV6_V6ONLY off (dual-stack, ss's "*")
	// takes both; one bound to a v4-mapped address only IPv4.
	IPv4, IPv6 bool
}

// IPVersions names them: "IPv4", "IPv6" or "IPv4 and IPv6".
func (e *Exposure) IPVersions() string {
	switch {
	case e.IPv4 && e.IPv6:
		return "IPv4 and IPv6"
	case e.IPv6:
		return "IPv6"
	}
	return "IPv4"
}

// loopbackIndex is lo's interface index, the same in every namespace
// (LOOPBACK_IFINDEX).
const loopbackIndex = 1

// Exposed returns the sockets of socks that listen beyond loopback, sorted by
// protocol, port and address. ifaceOf names the interface that holds an
// address in a namespace (InterfaceOfAddr); it may be nil.
func Exposed(socks []Socket, ifaceOf func(netns uint32, a netip.Addr) string) []Exposure {
	var out []Exposure
	for i := range socks {
		s := &socks[i]
		if !listensForPeers(s) {
			continue
		}
		addr := s.Local.Addr().Unmap()
		if addr.IsLoopback() || s.Interface == loopbackIndex {
			// A wildcard bound to lo (SO_BINDTODEVICE) hears only loopback too.
			continue
		}
		e := Exposure{Socket: s, Scope: Address}
		switch {
		case s.Family != unix.AF_INET6 || s.Local.Addr().Is4In6():
			e.IPv4 = true
		case s.Local.Addr().IsUnspecified() && !s.V6Only:
			e.IPv4, e.IPv6 = true, true
		default:
			e.IPv6 = true
		}
		switch {
		case addr.IsUnspecified():
			e.Scope = Wildcard
		case addr.IsLinkLocalUnicast():
			e.Scope = LinkLocal
		}
		if e.Scope != Wildcard && ifaceOf != nil {
			e.Interface = ifaceOf(s.Netns, addr)
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Exposure) int {
		return cmp.Or(
			cmp.Compare(a.Socket.Protocol, b.Socket.Protocol),
			cmp.Compare(a.Socket.Local.Port(), b.Socket.Local.Port()),
			a.Socket.Local.Addr().Compare(b.Socket.Local.Addr()),
			cmp.Compare(a.Socket.Netns, b.Socket.Netns),
		)
	})
	return out
}

// listensForPeers is true for TCP listeners and for UDP sockets bound to a
// port but not connected: a connected UDP socket only hears from its peer.
func listensForPeers(s *Socket) bool {
	switch s.Protocol {
	case TCP:
		return s.State == tcpstate.Listen
	case UDP:
		return s.State == tcpstate.Close && s.Local.Port() != 0
	}
	return false
}

// InterfaceOfAddr returns a lookup from a namespace's inode and an address
// to the name of the interface that holds the address there. netns is the
// calling thread's namespace, whose table it reads at once; another
// namespace's table is read on first use, from a thread moved into it
// (RunInNetns), and kept. A namespace that is gone knows no address.
func InterfaceOfAddr(netns uint32) func(uint32, netip.Addr) string {
	owners := map[uint32]map[netip.Addr]string{netns: addrOwners()}
	return func(ns uint32, a netip.Addr) string {
		owner, ok := owners[ns]
		if !ok {
			RunInNetns(ns, func() error {
				owner = addrOwners()
				return nil
			})
			owners[ns] = owner
		}
		return owner[a.WithZone("").Unmap()]
	}
}

// addrOwners maps each address of the calling thread's namespace to its
// interface's name.
func addrOwners() map[netip.Addr]string {
	owner := map[netip.Addr]string{}
	ifaces, err := net.Interfaces()
	if err != nil {
		return owner
	}
	for _, ifi := range ifaces {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
					owner[ip.Unmap()] = ifi.Name
				}
			}
		}
	}
	return owner
}
