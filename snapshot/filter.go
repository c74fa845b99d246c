package snapshot

import (
	"fmt"
	"net/netip"
	"strings"
)

// Filter selects sockets by what the kernel's state bitmask cannot express:
// ports, address ranges and owners. Every non-empty field must match; within
// a field any entry may match. The zero Filter matches every socket.
type Filter struct {
	Ports  []uint16 // local or remote
	SPorts []uint16 // local
	DPorts []uint16 // remote
	Src    []netip.Prefix
	Dst    []netip.Prefix
	PIDs   []int32
	Comms  []string
}

// NeedsProcesses reports whether the filter can only be applied after the
// /proc scan has attributed sockets to processes.
func (f *Filter) NeedsProcesses() bool {
	return len(f.PIDs) > 0 || len(f.Comms) > 0
}

// Match reports whether s passes the filter. Unix sockets have no ports or
// addresses: a port or address filter never matches them.
func (f *Filter) Match(s *Socket) bool {
	if s.Protocol == Unix && f.hasInetFields() {
		return false
	}
	lport, rport := s.Local.Port(), s.Remote.Port()
	if len(f.Ports) > 0 && !(containsPort(f.Ports, lport) || containsPort(f.Ports, rport)) {
		return false
	}
	if len(f.SPorts) > 0 && !containsPort(f.SPorts, lport) {
		return false
	}
	if len(f.DPorts) > 0 && !containsPort(f.DPorts, rport) {
		return false
	}
	if len(f.Src) > 0 && !inPrefixes(f.Src, s.Local.Addr()) {
		return false
	}
	if len(f.Dst) > 0 && !inPrefixes(f.Dst, s.Remote.Addr()) {
		return false
	}
	if len(f.PIDs) > 0 || len(f.Comms) > 0 {
		return f.matchProcess(s.Processes)
	}
	return true
}

func (f *Filter) hasInetFields() bool {
	return len(f.Ports)+len(f.SPorts)+len(f.DPorts)+len(f.Src)+len(f.Dst) > 0
}

func (f *Filter) matchProcess(procs []Process) bool {
	for _, p := range procs {
		pidOK := len(f.PIDs) == 0
		for _, pid := range f.PIDs {
			pidOK = pidOK || p.PID == pid
		}
		commOK := len(f.Comms) == 0
		for _, c := range f.Comms {
			commOK = commOK || p.Comm == TruncComm(c)
		}
		if pidOK && commOK {
			return true
		}
	}
	return false
}

func containsPort(ports []uint16, p uint16) bool {
	for _, q := range ports {
		if q == p {
			return true
		}
	}
	return false
}

// inPrefixes matches an address against prefixes, treating an IPv4-mapped
// IPv6 address as the IPv4 address it carries: a dual-stack socket talking to
// 10.0.0.1 shows ::ffff:10.0.0.1, and users filter it as 10.0.0.0/8.
func inPrefixes(prefixes []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParsePrefix accepts an address ("10.0.0.1", "::1") or a CIDR ("10.0.0.0/8"),
// with optional brackets around IPv6 ("[::1]"). A v4-mapped prefix is stored
// as IPv4, so it matches both spellings.
func ParsePrefix(s string) (netip.Prefix, error) {
	in := strings.TrimSpace(s)
	in = strings.TrimPrefix(in, "[")
	in = strings.Replace(in, "]", "", 1)
	if strings.Contains(in, "/") {
		p, err := netip.ParsePrefix(in)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad address or CIDR %q", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(in)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad address or CIDR %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// commLen is the kernel's limit on a command name (TASK_COMM_LEN less the NUL).
const commLen = 15

// TruncComm cuts name to what the kernel keeps of a command name, so that
// --comm with a long program name matches what /proc and BPF report.
func TruncComm(name string) string {
	if len(name) > commLen {
		return name[:commLen]
	}
	return name
}
