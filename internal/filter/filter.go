// Package filter is the one socket filter every socklife command takes:
// its flags (Flags), the parsed and checked filter (Filter), and what is
// derived from it — the part the BPF side applies (Split), a matcher for
// sockets from a snapshot (Socket) and one for connections and events
// (Match), for what the kernel cannot filter.
package filter

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/ssfilter"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// PortRange is LO-HI, both included; a single port has Lo == Hi.
type PortRange struct{ Lo, Hi uint16 }

// Ports is a set of ports; empty means no filter.
type Ports []PortRange

// Has reports whether p is in the set.
func (ps Ports) Has(p uint16) bool {
	return slices.ContainsFunc(ps, func(r PortRange) bool { return r.Lo <= p && p <= r.Hi })
}

// list expands the set for the BPF side, which holds max ports; ok is
// false when it holds more.
func (ps Ports) list(max int) (out []uint16, ok bool) {
	for _, r := range ps {
		for p := int(r.Lo); p <= int(r.Hi); p++ {
			if len(out) == max {
				return nil, false
			}
			out = append(out, uint16(p))
		}
	}
	return out, true
}

// Filter is what the filter flags ask for. Every non-empty field must
// match; within a field any entry may. The zero Filter keeps everything.
type Filter struct {
	Ports  Ports // local or remote, as ss's `sport = :P or dport = :P`
	SPorts Ports // local
	DPorts Ports // remote
	// Src and Dst hold the local and remote address; a v4-mapped address
	// is tested as the IPv4 address it carries.
	Src, Dst []netip.Prefix
	PIDs     []uint32
	// Comms are unanchored regular expressions, as pgrep takes: "redis"
	// matches redis-server; "^redis$" only redis.
	Comms []*regexp.Regexp
	Netns uint32 // inode; 0: every namespace
	// IPv4Only counts a dual-stack socket talking IPv4 (v4-mapped) as
	// IPv4, as the BPF side does.
	IPv4Only, IPv6Only bool
	// States is the --state mask (0: not given); what a state means is
	// the command's (now, a transition's, or one the connection went
	// through), so no matcher here applies it.
	States     tcpstate.Mask
	StateNames []string // as given, for messages
	// Expr is an ss filter expression given after the flags (commands of
	// events; snapshot sends its own to the kernel): tested with the
	// addresses, on what the kernel's filters passed.
	Expr *ssfilter.Expr
	// Containers are --container values: a container id or its prefix,
	// or a name; Pods are --pod values: NAMESPACE/NAME, a NAME in any
	// namespace, or a pod uid. Tested by Container, on what the commands
	// attribute (render.Names).
	Containers, Pods []string
}

// Unowned is f without --pid and --comm: for sockets whose owners are not
// known yet (live.Options.Keep runs before the /proc scan).
func (f *Filter) Unowned() *Filter {
	u := *f
	u.PIDs, u.Comms = nil, nil
	return &u
}

// WholeNamespaces reports whether Socket, owners aside, keeps every inet
// socket of each namespace it keeps any of: it tests nothing of a socket
// but its namespace. A namespace's sockets can then be counted whole
// (tracer.StateCounter) for what the filter keeps.
func (f *Filter) WholeNamespaces() bool {
	return !f.inet() && !f.IPv4Only && !f.IPv6Only && f.Expr == nil
}

// Owned reports whether the filter needs to know who owns a socket.
func (f *Filter) Owned() bool { return len(f.PIDs) > 0 || len(f.Comms) > 0 }

// inet reports whether the filter looks at addresses or ports, which Unix
// sockets do not have.
func (f *Filter) inet() bool {
	return len(f.Ports)+len(f.SPorts)+len(f.DPorts)+len(f.Src)+len(f.Dst) > 0
}

// Split divides the filter between the kernel and user space: the tracer
// options the BPF side applies (pid, ports, namespace, family) and the rest,
// which Match must still test. The BPF side takes one pid and
// tracer.MaxFilterPorts ports a set: more stay in user space. pidInKernel
// false leaves the pid to user space too (backlog: a listener older than
// the tracer has no owner in BPF until it accepts).
func (f *Filter) Split(pidInKernel bool) (tracer.Options, *Filter) {
	rest := *f
	var o tracer.Options
	o.Netns, rest.Netns = f.Netns, 0
	o.IPv4Only, o.IPv6Only, rest.IPv4Only, rest.IPv6Only = f.IPv4Only, f.IPv6Only, false, false
	if pidInKernel && len(f.PIDs) == 1 {
		o.PID, rest.PIDs = f.PIDs[0], nil
	}
	for _, s := range []struct {
		in   Ports
		out  *[]uint16
		left *Ports
	}{{f.Ports, &o.Ports, &rest.Ports}, {f.SPorts, &o.SPorts, &rest.SPorts}, {f.DPorts, &o.DPorts, &rest.DPorts}} {
		if l, ok := s.in.list(tracer.MaxFilterPorts); ok {
			*s.out, *s.left = l, nil
		}
	}
	return o, &rest
}

// Addrs tests the namespace, ports, addresses and family of an inet
// socket or connection (remote is the zero AddrPort for a listener, which
// --dport and --dst then never match).
func (f *Filter) Addrs(netns uint32, local, remote netip.AddrPort) bool {
	lp, rp := local.Port(), remote.Port()
	v4 := local.Addr().Unmap().Is4()
	switch {
	case f.Netns != 0 && netns != f.Netns,
		f.IPv4Only && !v4, f.IPv6Only && v4,
		len(f.Ports) > 0 && !f.Ports.Has(lp) && !f.Ports.Has(rp),
		len(f.SPorts) > 0 && !f.SPorts.Has(lp),
		len(f.DPorts) > 0 && !f.DPorts.Has(rp),
		len(f.Src) > 0 && !inPrefixes(f.Src, local.Addr()),
		len(f.Dst) > 0 && !inPrefixes(f.Dst, remote.Addr()):
		return false
	}
	if f.Expr == nil {
		return true
	}
	s := exprSock(local, remote)
	return f.Expr.Match(&s)
}

// exprSock is what an ss expression sees of a connection. Events carry a
// dual-stack socket's v4-mapped addresses as IPv4: tested as an IPv4
// socket, which every IPv4 prefix and port test matches as ss matches the
// v4-mapped socket.
func exprSock(local, remote netip.AddrPort) ssfilter.Sock {
	fam := uint8(unix.AF_INET6)
	if local.Addr().Unmap().Is4() {
		fam = unix.AF_INET
	}
	return ssfilter.Sock{Family: fam, Local: local, Remote: remote}
}

// Owner tests one owning process; with no --pid or --comm any passes.
// Callers pass no owner at all for an unknown one.
func (f *Filter) Owner(pid uint32, comm string) bool {
	if len(f.PIDs) > 0 && !slices.Contains(f.PIDs, pid) {
		return false
	}
	// A name from /proc may be longer than the task's own (a kworker's
	// "kworker/u8:1-events_unbound"); BPF reads the task's 15 bytes.
	// Compared as the kernel keeps it, a pattern means the same in every
	// command.
	if len(comm) > CommLen {
		comm = comm[:CommLen]
	}
	return len(f.Comms) == 0 || slices.ContainsFunc(f.Comms, func(re *regexp.Regexp) bool { return re.MatchString(comm) })
}

// Match tests an inet connection or event: its addresses and any one of
// its owners (a listener's holders, say). No owner is an unknown owner.
func (f *Filter) Match(netns uint32, local, remote netip.AddrPort, owners ...tracer.Holder) bool {
	if !f.Addrs(netns, local, remote) {
		return false
	}
	if !f.Owned() {
		return true
	}
	return slices.ContainsFunc(owners, func(h tracer.Holder) bool { return f.Owner(h.PID, h.Comm) })
}

// Socket tests a socket from a snapshot, with its processes attached if
// the filter is Owned. Unix sockets have no ports, addresses or family
// here: an address or port filter never matches them, and -4/-6 leave them
// to the caller (snapshot -x -4 lists both, as ss does).
func (f *Filter) Socket(s *snapshot.Socket) bool {
	if s.Protocol == snapshot.Unix {
		if f.inet() || f.Netns != 0 && s.Netns != f.Netns {
			return false
		}
	} else if !f.Addrs(s.Netns, s.Local, s.Remote) {
		return false
	}
	if !f.Owned() {
		return true
	}
	return slices.ContainsFunc(s.Processes, func(p snapshot.Process) bool { return f.Owner(uint32(p.PID), p.Comm) })
}

// inPrefixes matches an address against prefixes, treating an IPv4-mapped
// IPv6 address as the IPv4 address it carries: a dual-stack socket talking to
// 10.0.0.1 shows ::ffff:10.0.0.1, and users filter it as 10.0.0.0/8.
func inPrefixes(prefixes []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	return slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
}

// Contained reports whether the filter asks for containers or pods.
func (f *Filter) Contained() bool { return len(f.Containers)+len(f.Pods) > 0 }

// Container tests the container a socket or event belongs to (ok false:
// the host's); with no --container or --pod any passes.
func (f *Filter) Container(c container.Container, ok bool) bool {
	if !f.Contained() {
		return true
	}
	if !ok {
		return false
	}
	if len(f.Containers) > 0 && !slices.ContainsFunc(f.Containers, func(want string) bool {
		return c.ID != "" && strings.HasPrefix(c.ID, want) || c.Name != "" && c.Name == want
	}) {
		return false
	}
	return len(f.Pods) == 0 || slices.ContainsFunc(f.Pods, func(want string) bool {
		if ns, name, qualified := strings.Cut(want, "/"); qualified {
			return c.Pod.Namespace == ns && c.Pod.Name == name
		}
		return c.Pod.Name == want || c.Pod.UID == want
	})
}

// KernelContainers reports whether --container and --pod say only what a
// cgroup path says (container ids or their prefixes, pod uids), so that
// the kernel can keep their cgroups; a name needs the runtime's answer,
// and leaves the test to user space (Container).
func (f *Filter) KernelContainers() bool {
	if !f.Contained() {
		return false
	}
	for _, c := range f.Containers {
		if !isHex(c) {
			return false
		}
	}
	for _, p := range f.Pods {
		if !isUID(p) {
			return false
		}
	}
	return true
}

// PathMatches is Container for what a cgroup path says alone (see
// KernelContainers).
func (f *Filter) PathMatches(p container.Path) bool {
	return f.Container(container.Container{ID: p.ID, Pod: container.Pod{UID: p.PodUID}}, true)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}

// isUID says whether s is a pod uid: a UUID, or a static pod's 32 hex digits.
func isUID(s string) bool {
	if len(s) == 32 {
		return isHex(s)
	}
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i : i+1]) {
				return false
			}
		}
	}
	return true
}
