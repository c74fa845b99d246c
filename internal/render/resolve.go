package render

// resolve.go: names for addresses and ports, for snapshot -r (ss -r). Off
// by default: at 3 a.m. the resolver may be what is broken, and a listing
// must not wait on it.

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/socklife/socklife/internal/netdb"
)

// Resolver names hosts by reverse lookup through the system resolver
// (/etc/hosts first, as getnameinfo does) and ports from /etc/services, as
// ss -r does. Each lookup is bounded by Timeout and all of them by Budget:
// once that is spent, what is left stays a number. A Resolver is for one
// goroutine.
type Resolver struct {
	Timeout, Budget time.Duration
	hosts           map[netip.Addr]string
	spent           time.Duration
}

// NewResolver is a Resolver with ss-like bounds: 1 s a lookup, 3 s in all.
func NewResolver() *Resolver {
	return &Resolver{Timeout: time.Second, Budget: 3 * time.Second, hosts: map[netip.Addr]string{}}
}

// Host is a's name, or "" when it has none, the lookup failed or the
// budget is spent.
func (r *Resolver) Host(a netip.Addr) string {
	if name, ok := r.hosts[a]; ok {
		return name
	}
	if r.spent >= r.Budget {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(r.Timeout, r.Budget-r.spent))
	defer cancel()
	start := time.Now()
	names, err := net.DefaultResolver.LookupAddr(ctx, a.Unmap().String())
	r.spent += time.Since(start)
	name := ""
	if err == nil && len(names) > 0 {
		name = strings.TrimSuffix(names[0], ".")
	}
	r.hosts[a] = name
	return name
}

// Service is the name of port for proto ("tcp", "udp") in /etc/services,
// or "".
func (r *Resolver) Service(port uint16, proto string) string {
	return netdb.System().Name(int(port), proto)
}

// appendResolved appends ap as ss -r prints it: host:service, each a
// number where it has no name; * as without -r.
func (r *Resolver) appendResolved(buf []byte, ap netip.AddrPort, ifname, proto string) []byte {
	a := ap.Addr()
	host := ""
	if a.IsValid() && !a.IsUnspecified() {
		host = r.Host(a)
	}
	if host == "" {
		// the numeric form, port included, then the port replaced below
		buf = AppendAddrPort(buf, netip.AddrPortFrom(a, 0), ifname)
		buf = buf[:len(buf)-1] // the "*" of port 0
	} else {
		buf = appendTerm(buf, host)
		if ifname != "" {
			buf = append(buf, '%')
			buf = appendTerm(buf, ifname)
		}
		buf = append(buf, ':')
	}
	switch name := r.Service(ap.Port(), proto); {
	case ap.Port() == 0:
		return append(buf, '*')
	case name != "":
		return appendTerm(buf, name)
	}
	return strconv.AppendUint(buf, uint64(ap.Port()), 10)
}
