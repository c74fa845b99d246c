package filter

import (
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/ssfilter"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
)

// Usage strings, one per flag, the same in every command (a test holds
// every command to them).
const (
	UsagePort      = "only sockets with one of these ports on either side, local or remote (comma list or repeated; LO-HI ranges)"
	UsageSport     = "only sockets with one of these local ports (comma list or repeated; LO-HI ranges)"
	UsageDport     = "only sockets with one of these remote ports (comma list or repeated; LO-HI ranges)"
	UsageSrc       = "only sockets whose local address is one of these addresses or CIDRs (comma list or repeated)"
	UsageDst       = "only sockets whose remote address is one of these addresses or CIDRs (comma list or repeated)"
	UsagePID       = "only sockets owned by one of these processes (comma list or repeated)"
	UsageComm      = "only sockets whose owner's command name matches this regular expression, unanchored as pgrep's (repeatable: any)"
	UsageNetns     = "only this network namespace: an inode (as in /proc/PID/ns/net) or a name in /run/netns"
	UsageContainer = "only sockets of these containers: an id (or its prefix, as docker ps shows it) or a name (comma list or repeated)"
	UsagePod       = "only sockets of these Kubernetes pods: NAMESPACE/NAME, NAME in any namespace, or a pod uid (comma list or repeated)"
	UsageIPv4      = "only IPv4 (dual-stack sockets talking IPv4 included)"
	UsageIPv6      = "only IPv6"
)

// Names are the filter flags every command has (--state only where the
// command has states).
var Names = []string{"port", "sport", "dport", "src", "dst", "pid", "comm", "netns", "ipv4", "ipv6"}

// CommLen is what the kernel keeps of a command name (TASK_COMM_LEN less
// the NUL), in /proc and in BPF alike.
const CommLen = 15

// Flags are the filter flags' values as typed.
type Flags struct {
	ports, sports, dports []string
	src, dst              []string
	pids                  []string
	comms                 []string
	netns                 string
	containers, pods      []string
	ipv4, ipv6            bool
	states                []string
	stateFlag             bool
	portZero              bool
	expr                  []string // an ss filter expression, SetExpr
}

// SetExpr gives the arguments after the flags: an ss filter expression,
// as ss takes it (`state established '( dport = :443 or sport = :443 )'`),
// which Parse reads too. For commands of connections and events; snapshot
// sends its own to the kernel.
func (f *Flags) SetExpr(args []string) { f.expr = args }

// AllowPortZero lets a port be 0: in a listing a socket with no peer has
// remote port 0 (snapshot --dport 0, as in ss); in a stream of events no
// socket has, and 0 is refused as a mistake.
func (f *Flags) AllowPortZero() { f.portZero = true }

// Register adds the filter flags to fl. stateHelp says what --state keeps
// for this command; "" leaves --state out.
func (f *Flags) Register(fl *pflag.FlagSet, stateHelp string) {
	fl.StringSliceVar(&f.ports, "port", nil, UsagePort)
	fl.StringSliceVar(&f.sports, "sport", nil, UsageSport)
	fl.StringSliceVar(&f.dports, "dport", nil, UsageDport)
	fl.StringSliceVar(&f.src, "src", nil, UsageSrc)
	fl.StringSliceVar(&f.dst, "dst", nil, UsageDst)
	fl.StringSliceVar(&f.pids, "pid", nil, UsagePID)
	// not a comma list: a comma may be part of a pattern ("a{1,3}")
	fl.StringArrayVar(&f.comms, "comm", nil, UsageComm)
	fl.StringVar(&f.netns, "netns", "", UsageNetns)
	fl.StringSliceVar(&f.containers, "container", nil, UsageContainer)
	fl.StringSliceVar(&f.pods, "pod", nil, UsagePod)
	fl.BoolVarP(&f.ipv4, "ipv4", "4", false, UsageIPv4)
	fl.BoolVarP(&f.ipv6, "ipv6", "6", false, UsageIPv6)
	if stateHelp != "" {
		f.stateFlag = true
		fl.StringArrayVar(&f.states, "state", nil, stateHelp+", ss names (repeatable): "+strings.Join(tcpstate.FilterNames(), ", "))
	}
}

// Parse checks the flags and returns the filter. Every error is bad
// input, in one line that names the flag.
func (f *Flags) Parse() (*Filter, error) {
	var flt Filter
	var err error
	for _, p := range []struct {
		name string
		in   []string
		out  *Ports
	}{{"--port", f.ports, &flt.Ports}, {"--sport", f.sports, &flt.SPorts}, {"--dport", f.dports, &flt.DPorts}} {
		if *p.out, err = parsePorts(p.name, p.in, f.portZero); err != nil {
			return nil, err
		}
	}
	if flt.Src, err = parsePrefixes("--src", f.src); err != nil {
		return nil, err
	}
	if flt.Dst, err = parsePrefixes("--dst", f.dst); err != nil {
		return nil, err
	}
	for _, s := range f.pids {
		pid, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
		switch {
		case err != nil:
			return nil, fmt.Errorf("bad --pid %q: want a process id", s)
		case pid == 0:
			// inside, 0 means "no filter"; typed, it is a mistake
			return nil, fmt.Errorf("--pid 0 matches nothing; leave the flag out to see everything")
		}
		flt.PIDs = append(flt.PIDs, uint32(pid))
	}
	for _, c := range f.comms {
		re, err := parseComm(c)
		if err != nil {
			return nil, err
		}
		flt.Comms = append(flt.Comms, re)
	}
	if flt.Netns, err = parseNetns(f.netns); err != nil {
		return nil, err
	}
	if flt.Containers, err = parseNames("--container", f.containers); err != nil {
		return nil, err
	}
	if flt.Pods, err = parseNames("--pod", f.pods); err != nil {
		return nil, err
	}
	if f.ipv4 && f.ipv6 {
		return nil, fmt.Errorf("-4 and -6 exclude each other; give neither for both")
	}
	flt.IPv4Only, flt.IPv6Only = f.ipv4, f.ipv6
	if flt.States, err = tcpstate.ParseFilter(f.states); err != nil {
		return nil, fmt.Errorf("--state: %w", err)
	}
	flt.StateNames = f.states
	if len(f.expr) > 0 {
		return f.parseExpr(&flt)
	}
	return &flt, nil
}

// parseExpr adds the SetExpr expression to flt. Its state words join
// --state (both given: a state must be in both); what an event cannot say
// (dev, fwmark, cgroup, autobound, Unix names) is refused.
func (f *Flags) parseExpr(flt *Filter) (*Filter, error) {
	ssf, err := ssfilter.Parse(f.expr, nil)
	if err != nil {
		return nil, fmt.Errorf("bad filter: %w", err)
	}
	if w := ssf.Expr.SocketOnly(); w != "" {
		return nil, fmt.Errorf("bad filter: %q needs a socket's own facts, which events do not carry (snapshot takes it)", w)
	}
	switch ssf.Family {
	case unix.AF_UNIX:
		return nil, fmt.Errorf("bad filter: unix: names Unix sockets; this command follows TCP")
	case unix.AF_INET:
		flt.IPv4Only = true
	case unix.AF_INET6:
		flt.IPv6Only = true
	}
	if flt.IPv4Only && flt.IPv6Only {
		return nil, fmt.Errorf("bad filter: its family and -4/-6 exclude each other")
	}
	if ssf.StatesGiven {
		if !f.stateFlag {
			return nil, fmt.Errorf("bad filter: state and exclude words: this command has no states to choose")
		}
		words := tcpstate.Mask(ssf.States) & tcpstate.All
		if flt.States != 0 {
			words &= flt.States
		}
		if words == 0 {
			return nil, fmt.Errorf("bad filter: its states and --state have none in common")
		}
		flt.States = words
	}
	flt.Expr = ssf.Expr
	return flt, nil
}

// parsePorts reads ports and LO-HI ranges; 0 is refused unless zero.
func parsePorts(flag string, values []string, zero bool) (Ports, error) {
	lowest := 1
	if zero {
		lowest = 0
	}
	var out Ports
	for _, v := range values {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(v), "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.ParseUint(lo, 10, 16)
		h, err2 := strconv.ParseUint(hi, 10, 16)
		switch {
		case err1 != nil || err2 != nil:
			return nil, fmt.Errorf("bad %s %q: want a port number %d-65535 or a range LO-HI", flag, v, lowest)
		case l == 0 && !zero:
			return nil, fmt.Errorf("%s 0 matches nothing; leave the flag out to see everything", flag)
		case l > h:
			return nil, fmt.Errorf("bad %s %q: the range ends before it starts", flag, v)
		}
		out = append(out, PortRange{uint16(l), uint16(h)})
	}
	return out, nil
}

func parsePrefixes(flag string, values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		p, err := snapshot.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("bad %s: %v", flag, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// parseComm compiles a --comm pattern, refusing one whose every match is
// longer than the kernel keeps of a name: it could never match, and users
// who type a long program name should learn why it shows nothing.
func parseComm(pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("bad --comm %q: %v", pattern, err)
	}
	parsed := mustParse(pattern)
	if n := minLen(parsed, nil, 0); n > CommLen {
		return nil, fmt.Errorf("--comm %q cannot match: the kernel keeps %d bytes of a command name (TASK_COMM_LEN-1), and the shortest name it matches has %d (use the first %d bytes)", pattern, CommLen, n, CommLen)
	}
	// "nginx|systemd-resolved" matches nginx, never systemd-resolved
	// (the kernel keeps "systemd-resolve"): a silent half of a filter.
	var never *syntax.Regexp
	walk(parsed, func(alt *syntax.Regexp) {
		for i, b := range alt.Sub {
			if never == nil && minLen(parsed, alt, i) > CommLen {
				never = b
			}
		}
	})
	if never != nil {
		return nil, fmt.Errorf("--comm %q: %q cannot match: the kernel keeps %d bytes of a command name (TASK_COMM_LEN-1) (use the first %d bytes)", pattern, never.String(), CommLen, CommLen)
	}
	return re, nil
}

// walk calls fn on every alternation in re.
func walk(re *syntax.Regexp, fn func(alt *syntax.Regexp)) {
	if re.Op == syntax.OpAlternate {
		fn(re)
	}
	for _, s := range re.Sub {
		walk(s, fn)
	}
}

// mustParse parses what regexp.Compile accepted, with the same flags.
func mustParse(pattern string) *syntax.Regexp {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		panic(err)
	}
	return re.Simplify()
}

// minLen is the fewest bytes a match of re can have; with alt, the
// fewest of a match that takes alt's branch pick.
func minLen(re, alt *syntax.Regexp, pick int) int {
	switch re.Op {
	case syntax.OpLiteral:
		return len(string(re.Rune))
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture, syntax.OpPlus:
		return minLen(re.Sub[0], alt, pick)
	case syntax.OpRepeat:
		return re.Min * minLen(re.Sub[0], alt, pick)
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			n += minLen(s, alt, pick)
		}
		return n
	case syntax.OpAlternate:
		if re == alt {
			return minLen(re.Sub[pick], alt, pick)
		}
		n := -1
		for _, s := range re.Sub {
			if m := minLen(s, alt, pick); n < 0 || m < n {
				n = m
			}
		}
		return max(n, 0)
	}
	return 0 // empty, anchors, star, quest
}

// parseNetns reads an inode or a name in /run/netns, and makes sure the
// namespace is there: one that is not would show nothing, silently.
func parseNetns(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		ino, err := snapshot.NamedNetns(s)
		if err != nil {
			return 0, fmt.Errorf("bad --netns: %v", err)
		}
		return ino, nil
	}
	if n == 0 {
		return 0, fmt.Errorf("--netns 0 matches nothing; leave the flag out to see everything")
	}
	ok, err := snapshot.NetnsExists(uint32(n))
	switch {
	case err != nil:
		return 0, fmt.Errorf("--netns %d: %v", n, err)
	case !ok:
		return 0, fmt.Errorf("--netns %d: no such network namespace (no process is in it and no name in /run/netns holds it)", n)
	}
	return uint32(n), nil
}

// parseNames checks --container and --pod values: none empty, and a pod's
// NAMESPACE/NAME with both parts.
func parseNames(flag string, values []string) ([]string, error) {
	out := make([]string, 0, len(values))
	for _, v := range values {
		v = strings.TrimSpace(v)
		ns, name, qualified := strings.Cut(v, "/")
		switch {
		case v == "":
			return nil, fmt.Errorf("empty %s value; leave the flag out to see everything", flag)
		case qualified && flag == "--pod" && (ns == "" || name == "" || strings.Contains(name, "/")):
			return nil, fmt.Errorf("bad --pod %q: want NAMESPACE/NAME, NAME or a pod uid", v)
		case qualified && flag == "--container":
			return nil, fmt.Errorf("bad --container %q: want a container id, id prefix or name", v)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
