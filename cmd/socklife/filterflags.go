package main

import (
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
	port         uint16
	sport, dport uint16
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
	fl.Uint16Var(&f.port, "port", 0, "only connections with this port on either side")
	fl.Uint16Var(&f.sport, "sport", 0, "only this local port")
	fl.Uint16Var(&f.dport, "dport", 0, "only this remote port")
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
	// 0 is "no filter" inside; given on the command line it is a mistake
	// (pid 0 owns no socket), not a request to see everything.
	if err := refuseZero(f.fs, "pid", "port", "sport", "dport", "netns"); err != nil {
		return tracer.Options{}, 0, err
	}
	for _, h := range f.disableHooks {
		if !slices.Contains(tracer.HookNames, h) {
			return tracer.Options{}, 0, badInput("--disable-hook: unknown hook %q (valid: %s)", h, strings.Join(tracer.HookNames, ", "))
		}
	}
	return tracer.Options{
		PID: f.pid, Port: f.port, SPort: f.sport, DPort: f.dport, Netns: f.netns,
		IPv4Only: f.ipv4, IPv6Only: f.ipv6, DisableHooks: f.disableHooks,
	}, states, nil
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
