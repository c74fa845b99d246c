package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/tracer"
)

// filterFlags are the socket filters and hook switches that trace and
// record share.
type filterFlags struct {
	pid          uint32
	comm         string
	ports        []string // comma lists, as for snapshot
	sports       []string
	dports       []string
	states       []string
	ipv4, ipv6   bool
	netns        uint32
	disableHooks []string
	debug        bool
	fs           *pflag.FlagSet // to tell a flag given as 0 from one left out
}

// register adds the flags; stateHelp says what --state keeps for this command.
func (f *filterFlags) register(fl *pflag.FlagSet, stateHelp string) {
	f.fs = fl
	fl.Uint32Var(&f.pid, "pid", 0, "only sockets owned by this process")
	fl.StringVar(&f.comm, "comm", "", "only sockets whose owner has this command name")
	fl.StringSliceVar(&f.ports, "port", nil, fmt.Sprintf("only connections with one of these ports on either side (comma list or repeated, %d at most)", tracer.MaxFilterPorts))
	fl.StringSliceVar(&f.sports, "sport", nil, fmt.Sprintf("only these local ports (%d at most)", tracer.MaxFilterPorts))
	fl.StringSliceVar(&f.dports, "dport", nil, fmt.Sprintf("only these remote ports (%d at most)", tracer.MaxFilterPorts))
	fl.StringArrayVar(&f.states, "state", nil, stateHelp+", ss names (repeatable): "+strings.Join(tcpstate.FilterNames(), ", "))
	fl.BoolVarP(&f.ipv4, "ipv4", "4", false, "only IPv4 (dual-stack sockets talking IPv4 included)")
	fl.BoolVarP(&f.ipv6, "ipv6", "6", false, "only IPv6")
	fl.Uint32Var(&f.netns, "netns", 0, "only this network namespace (inode, as in /proc/PID/ns/net)")
	fl.StringArrayVar(&f.disableHooks, "disable-hook", nil, "do not use this hook, to force a fallback (repeatable): "+strings.Join(tracer.HookNames, ", "))
	fl.BoolVar(&f.debug, "debug", false, "log which hook each feature uses and why others failed")
}

// options checks the flags and turns them into tracer options (all but
// --comm, which the tracer cannot filter) and the --state mask.
func (f filterFlags) options() (tracer.Options, tcpstate.Mask, error) {
	states, err := tcpstate.ParseFilter(f.states)
	if err != nil {
		return tracer.Options{}, 0, badInput("--state: %w", err)
	}
	if f.ipv4 && f.ipv6 {
		return tracer.Options{}, 0, badInput("-4 and -6 exclude each other")
	}
	if err := refuseZero(f.fs, "pid", "netns"); err != nil {
		return tracer.Options{}, 0, err
	}
	var sets [3][]uint16
	for i, fl := range []struct {
		name   string
		values []string
	}{{"--port", f.ports}, {"--sport", f.sports}, {"--dport", f.dports}} {
		ports, err := parsePorts(fl.name, fl.values)
		switch {
		case err != nil:
			return tracer.Options{}, 0, err
		case slices.Contains(ports, 0):
			return tracer.Options{}, 0, badInput("%s 0 matches nothing; leave the flag out to see everything", fl.name)
		case len(ports) > tracer.MaxFilterPorts:
			return tracer.Options{}, 0, badInput("%s: %d ports, at most %d", fl.name, len(ports), tracer.MaxFilterPorts)
		}
		sets[i] = ports
	}
	if err := checkDisableHooks(f.disableHooks); err != nil {
		return tracer.Options{}, 0, err
	}
	return tracer.Options{
		PID: f.pid, Ports: sets[0], SPorts: sets[1], DPorts: sets[2], Netns: f.netns,
		IPv4Only: f.ipv4, IPv6Only: f.ipv6, DisableHooks: f.disableHooks,
	}, states, nil
}

// checkDisableHooks is --disable-hook's check, for every command that takes it.
func checkDisableHooks(names []string) error {
	if err := tracer.CheckHookNames(names); err != nil {
		return badInput("--disable-hook: %w", err)
	}
	return nil
}

// refuseZero rejects a filter flag given as 0. Inside, 0 means "no filter";
// on the command line it is a mistake (pid 0 owns no socket, port 0 is no
// port), not a request to see everything.
func refuseZero(fs *pflag.FlagSet, names ...string) error {
	for _, name := range names {
		if fl := fs.Lookup(name); fl != nil && fl.Changed && fl.Value.String() == "0" {
			return badInput("--%s 0 matches nothing; leave the flag out to see everything", name)
		}
	}
	return nil
}
