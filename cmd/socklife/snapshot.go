package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/socklife/socklife/internal/filter"
	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/ssfilter"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
)

// snapshotFlags are the flags of `socklife snapshot`; ss users will find
// the same letters doing the same things.
type snapshotFlags struct {
	tcp, udp, unix   bool
	listening, all   bool
	filter           filter.Flags
	allNetns         bool
	exposed, summary bool
	noProcess        bool
	info             bool
	resolve          bool
	output           string
	ssArgs           []string // the ss FILTER arguments
}

func newSnapshotCmd() *cobra.Command {
	var f snapshotFlags
	cmd := &cobra.Command{
		Use:     "snapshot [flags] [FILTER...]",
		Aliases: []string{"ls"},
		Short:   "List every socket now, with its owner (like ss -tulpnx)",
		Long: `List sockets from the kernel's sock_diag interface, with the processes that own them.

Without -a or -l only connected sockets are shown, as with ss. --exposed lists
what listens beyond loopback; --summary counts sockets by state and ranks the
processes holding CLOSE-WAIT sockets.

FILTER is an ss(8) filter, taken as ss takes it, in one argument or several:
[ state NAME | exclude NAME ]... [ EXPRESSION ], where EXPRESSION combines
src/dst HOST, sport/dport [OP] PORT, dev, fwmark, cgroup and autobound with
and, or, not and ( ) (each parenthesis a word of its own). As ss does, the
expression goes to the kernel as inet_diag bytecode and is tested again on
what comes back. State words replace -a and -l, as in ss; beside --state,
a socket must pass both.`,
		Example: `  socklife snapshot -tl                 # TCP listeners with owners (ss -tlnp)
  socklife snapshot -ta --state close-wait
  socklife snapshot --exposed           # what listens beyond loopback
  socklife snapshot --summary --all-netns
  socklife snapshot -t -o ndjson | jq 'select(.remote_port == 443)'
  socklife snapshot -tn state established '( dport = :443 or sport = :443 )'
  socklife snapshot -ta exclude listening dst 10.0.0.0/8`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.ssArgs = args
			return runSnapshot(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.tcp, "tcp", "t", false, "TCP sockets")
	fl.BoolVarP(&f.udp, "udp", "u", false, "UDP sockets")
	fl.BoolVarP(&f.unix, "unix", "x", false, "Unix sockets")
	fl.BoolVarP(&f.listening, "listening", "l", false, "only listening (and unconnected bound) sockets")
	fl.BoolVarP(&f.all, "all", "a", false, "sockets in every state")
	f.filter.AllowPortZero() // --dport 0: no peer, as in ss
	f.filter.Register(fl, "only sockets in this state (replaces -a and -l; with FILTER's state words, a socket must be in both)")
	fl.BoolVar(&f.allNetns, "all-netns", false, "every network namespace on the host, not only this one")
	fl.BoolVar(&f.exposed, "exposed", false, "TCP listeners and bound UDP sockets reachable beyond loopback")
	fl.BoolVar(&f.summary, "summary", false, "counts per protocol and state, and the top CLOSE-WAIT holders")
	fl.BoolVar(&f.noProcess, "no-process", false, "skip looking up owning processes (faster on hosts with many fds)")
	fl.BoolVarP(&f.info, "info", "i", false, "TCP internals: rtt, retransmits, bytes (tcp_info)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table, json, ndjson")
	// ss habits: -n (numeric) and -p (processes) are what socklife always
	// does, so `socklife snapshot -tulpn` works as typed.
	var numeric, processes bool
	fl.BoolVarP(&numeric, "numeric", "n", true, "addresses and ports as numbers (always; accepted for ss habits)")
	fl.BoolVarP(&processes, "processes", "p", true, "show owning processes (the default; accepted for ss habits)")
	fl.MarkHidden("numeric")
	fl.MarkHidden("processes")
	fl.BoolVarP(&f.resolve, "resolve", "r", false, "name hosts (system resolver, bounded: 1s a lookup, 3s in all) and ports (/etc/services) in the table, as ss -r; JSON keeps numbers")
	// ss letters that mean something else here: a line that says what to
	// type instead, not "unknown flag"
	for _, h := range ssHabits {
		fl.BoolP(h.name, h.short, false, h.answer)
		fl.MarkHidden(h.name)
	}
	return cmd
}

// ssHabits are ss's flags that socklife answers differently. (ss's -o,
// timers, is socklife's output format: `-o` without a format says so, see
// plainFlagError.)
var ssHabits = []struct{ short, name, answer string }{
	{"m", "memory", "-m: socket memory (ss -m's skmem) is in the JSON: socklife snapshot -i -o json"},
	{"e", "extended", "-e: ss's extended details (uid, inode, cookie, cgroup, timer) are in the JSON: socklife snapshot -o json"},
}

// snapshotPlan is what the flags ask for, validated.
type snapshotPlan struct {
	dump   snapshot.Options
	filter *filter.Filter
	format render.Format
	procs  bool
}

func planSnapshot(f *snapshotFlags) (*snapshotPlan, error) {
	format, err := render.ParseFormat(f.output, render.Table, render.JSON, render.NDJSON)
	if err != nil {
		return nil, usageError{err}
	}
	if f.exposed && f.summary {
		return nil, badInput("--exposed and --summary cannot be combined")
	}
	flt, err := parseFilter(&f.filter)
	if err != nil {
		return nil, err
	}
	ssf, err := parseSSFilter(f.ssArgs)
	if err != nil {
		return nil, err
	}
	statesWords := ssf != nil && ssf.StatesGiven
	if (f.exposed || f.summary) && (flt.States != 0 || f.listening || f.all || statesWords) {
		return nil, badInput("--exposed and --summary choose their own states: drop --state, -l, -a and state/exclude words")
	}
	if flt.States != 0 && (f.listening || f.all) {
		// --state would win and -l/-a be dropped without a word
		return nil, badInput("--state and %s both choose the states: give one", map[bool]string{true: "-l", false: "-a"}[f.listening])
	}
	if f.exposed && f.unix {
		return nil, badInput("--exposed covers TCP and UDP: drop -x")
	}
	p := &snapshotPlan{format: format, procs: !f.noProcess}
	o := &p.dump
	o.TCP, o.UDP, o.Unix = f.tcp, f.udp, f.unix
	ipv4, ipv6 := flt.IPv4Only, flt.IPv6Only
	if (ipv4 || ipv6) && !f.tcp && !f.udp {
		// -4/-6 name the internet family, all its types unless -t or -u
		// narrow it; beside -x, as with ss, they add to it.
		o.TCP, o.UDP = true, true
	}
	if !o.TCP && !o.UDP && !o.Unix {
		o.TCP, o.UDP, o.Unix = true, true, true
	}
	o.IPv4, o.IPv6 = !ipv6, !ipv4
	o.AllNetns = f.allNetns
	if flt.Netns != 0 && !f.allNetns {
		o.Netns = []uint32{flt.Netns} // dumped beside ours, then kept alone
	}
	o.Info = f.info || format != render.Table

	switch {
	case flt.States != 0:
		o.States = flt.States
	case f.all:
		o.States = tcpstate.All
	case f.listening:
		o.States = tcpstate.Listening
	default:
		o.States = tcpstate.Default
	}
	if statesWords {
		// The words replace -a and -l (ss's StateMask); beside --state,
		// each is a filter of its own and a socket must pass both.
		words := ssStates(ssf.StateMask(0))
		if flt.States == 0 {
			o.States = words
		} else if o.States &= words; o.States == 0 {
			return nil, badInput("--state %s and the filter's state words have no state in common", strings.Join(flt.StateNames, ","))
		}
	}
	o.SSFilter = ssf
	switch {
	case f.summary:
		o.States = tcpstate.All
	case f.exposed:
		if !f.tcp && !f.udp {
			o.TCP, o.UDP = true, true
		}
		o.Unix = false
		o.States = tcpstate.Listening
	}

	// The dump chose the family (-4 beside -x keeps Unix sockets, and -6
	// keeps dual-stack sockets talking IPv4, as ss does): the matcher
	// tests the rest.
	m := *flt
	m.IPv4Only, m.IPv6Only = false, false
	p.filter = &m
	if flt.Owned() && !p.procs {
		return nil, badInput("--pid and --comm need owning processes: drop --no-process")
	}
	return p, nil
}

// parseSSFilter parses the arguments after the flags as ss does; nil for
// none.
func parseSSFilter(args []string) (*ssfilter.Filter, error) {
	if len(args) == 0 {
		return nil, nil
	}
	f, err := ssfilter.Parse(args, nil)
	if err != nil {
		return nil, badInput("bad filter: %v", err)
	}
	return f, nil
}

// ssStates converts an ss state mask to the kernel's (the same bits);
// SYN_RECV includes the request sockets (NEW_SYN_RECV). Bit 0, ss's
// "state unknown", stays: the kernel then shows nothing, as with ss, where
// an empty mask would mean every state to Dump.
func ssStates(m uint32) tcpstate.Mask {
	s := tcpstate.Mask(m)
	if s.Has(tcpstate.SynRecv) {
		s |= tcpstate.Of(tcpstate.NewSynRecv)
	}
	return s
}

func runSnapshot(cmd *cobra.Command, f *snapshotFlags) error {
	for _, h := range ssHabits {
		if on, _ := cmd.Flags().GetBool(h.name); on {
			return badInput("%s", h.answer)
		}
	}
	plan, err := planSnapshot(f)
	if err != nil {
		return err
	}
	// Notes of namespaces skipped come back in res.Warnings, printed after
	// the table (a long-running command's logger, if one ran in this
	// process, hears them no more).
	snapshot.SetNotes(nil)
	res, err := snapshot.Dump(cmd.Context(), plan.dump)
	if err != nil {
		return fmt.Errorf("dumping sockets: %w", err)
	}
	// Notes go to stderr after the output, where a reader of a long table sees them.
	notes := res.Warnings
	socks := res.Sockets
	if plan.procs {
		stats, err := snapshot.AttachProcesses(socks)
		if err != nil {
			return fmt.Errorf("looking up owning processes: %w", err)
		}
		if stats.Denied > 0 {
			notes = append(notes, hiddenOwnersNote(stats.Denied, os.Geteuid()))
		}
	}
	names, err := newNames(plan.filter)
	if err != nil {
		return err
	}
	if names.Containers != nil {
		// the runtimes are asked in the background; a one-shot listing
		// (and a filter by name) waits a moment for their names
		for i := range socks {
			names.SocketContainer(&socks[i])
		}
		settleNames(cmd.Context())
	}
	socks = applyFilter(socks, plan.filter, names)
	if len(socks) == 0 && !plan.dump.AllNetns && plan.filter.Netns == 0 {
		notes = append(notes, otherNetnsNotes(plan.filter.PIDs)...)
	}

	// A reader that stopped reading (a stalled pipe) must not keep a
	// stopped snapshot alive: a second after SIGINT or SIGTERM with a
	// write blocked that long, it exits (1) without the rest.
	stdout := &watchedWriter{w: cmd.OutOrStdout()}
	out := bufio.NewWriterSize(stdout, 64<<10)
	tableOpts := render.TableOptions{Netns: plan.dump.AllNetns, Processes: plan.procs, Info: f.info}
	if f.resolve {
		tableOpts.Resolve = render.NewResolver()
	}
	err = untilStopped(cmd.Context(), stdout.Stalled, func() error {
		var err error
		switch {
		case f.summary:
			err = writeSummary(out, plan, socks)
		case f.exposed:
			err = writeExposed(out, plan, socks, tableOpts, names)
		case plan.format == render.Table:
			err = render.WriteSockets(out, socks, tableOpts, names)
		default:
			err = render.WriteJSONList(out, plan.format == render.NDJSON, len(socks), func(i int) any {
				return render.SocketToJSON(&socks[i], plan.procs, names)
			})
		}
		if err == nil {
			err = out.Flush()
		}
		return err
	})
	if errors.Is(err, errOutputBlocked) {
		return err
	}
	if err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	for _, n := range notes {
		fmt.Fprintln(cmd.ErrOrStderr(), "socklife: note:", n)
	}
	return nil
}

// hiddenOwnersNote explains a blank Process column, as ss users expect to be
// told: without root, other users' processes cannot be inspected.
func hiddenOwnersNote(denied, euid int) string {
	if euid != 0 {
		return fmt.Sprintf("owners of sockets held by %d processes of other users are hidden: run as root to see them", denied)
	}
	return fmt.Sprintf("owners of sockets held by %d processes are hidden: their /proc/PID/fd cannot be read", denied)
}

// applyFilter keeps the sockets that match, in place.
func applyFilter(socks []snapshot.Socket, flt *filter.Filter, names *render.Names) []snapshot.Socket {
	kept := socks[:0]
	for i := range socks {
		if flt.Socket(&socks[i]) && flt.Container(names.SocketContainer(&socks[i])) {
			kept = append(kept, socks[i])
		}
	}
	return kept
}

// otherNetnsNotes explains an empty answer to --pid when the process lives
// in another network namespace, whose sockets only --all-netns lists.
func otherNetnsNotes(pids []uint32) []string {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return nil
	}
	var notes []string
	for _, pid := range pids {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err == nil && ns != self {
			notes = append(notes, fmt.Sprintf("process %d lives in another network namespace (%s): add --all-netns", pid, ns))
		}
	}
	return notes
}

func writeSummary(w io.Writer, plan *snapshotPlan, socks []snapshot.Socket) error {
	sum := snapshot.Summarize(socks, 10)
	var asked []snapshot.Protocol
	for p, on := range map[snapshot.Protocol]bool{snapshot.TCP: plan.dump.TCP, snapshot.UDP: plan.dump.UDP, snapshot.Unix: plan.dump.Unix} {
		if on {
			asked = append(asked, p)
		}
	}
	sum.Include(asked...)
	if plan.format == render.Table {
		return render.WriteSummaryTable(w, &sum)
	}
	return render.WriteJSONList(w, true, 1, func(int) any { return render.SummaryToJSON(&sum) })
}

func writeExposed(w io.Writer, plan *snapshotPlan, socks []snapshot.Socket, opts render.TableOptions, names *render.Names) error {
	var ifaceOf func(uint32, netip.Addr) string
	if self, err := snapshot.CurrentNetns(); err == nil {
		ifaceOf = snapshot.InterfaceOfAddr(self)
	}
	exp := snapshot.Exposed(socks, ifaceOf)
	if plan.format == render.Table {
		return render.WriteExposedTable(w, exp, opts, names)
	}
	return render.WriteJSONList(w, plan.format == render.NDJSON, len(exp), func(i int) any {
		return render.ExposureToJSON(&exp[i], plan.procs, names)
	})
}
