package main

import (
	"strings"
	"testing"

	"github.com/socklife/socklife/internal/filter"
)

// Every command takes the same filter flags, with the same meaning: the
// same name, shorthand and usage, from the one registration.
func TestFilterFlagsEverywhere(t *testing.T) {
	want := map[string]string{
		"port": filter.UsagePort, "sport": filter.UsageSport, "dport": filter.UsageDport,
		"src": filter.UsageSrc, "dst": filter.UsageDst, "pid": filter.UsagePID, "comm": filter.UsageComm,
		"netns": filter.UsageNetns, "ipv4": filter.UsageIPv4, "ipv6": filter.UsageIPv6,
	}
	if len(want) != len(filter.Names) {
		t.Fatalf("filter.Names %v and this table differ", filter.Names)
	}
	short := map[string]string{"ipv4": "4", "ipv6": "6"}
	// --state where the command has states: what a state means is the command's
	hasState := map[string]bool{"snapshot": true, "trace": true, "record": true}
	commands := []string{"snapshot", "trace", "record", "top", "closewait", "backlog"}
	seen := map[string]bool{}
	for _, cmd := range newRootCmd().Commands() {
		name := cmd.Name()
		if !strings.Contains(" "+strings.Join(commands, " ")+" ", " "+name+" ") {
			continue
		}
		seen[name] = true
		for _, fl := range filter.Names {
			f := cmd.Flags().Lookup(fl)
			switch {
			case f == nil:
				t.Errorf("%s has no --%s", name, fl)
			case f.Usage != want[fl]:
				t.Errorf("%s --%s: usage %q, want the shared %q", name, fl, f.Usage, want[fl])
			case f.Shorthand != short[fl]:
				t.Errorf("%s --%s: shorthand %q, want %q", name, fl, f.Shorthand, short[fl])
			}
		}
		if st := cmd.Flags().Lookup("state"); (st != nil) != hasState[name] {
			t.Errorf("%s: --state present %v, want %v", name, st != nil, hasState[name])
		}
	}
	for _, c := range commands {
		if !seen[c] {
			t.Errorf("no command %s", c)
		}
	}
}

// The same bad value gets the same one-line answer, exit 2, from every
// command; a namespace that does not exist is bad input too.
func TestFilterFlagsBadInputEverywhere(t *testing.T) {
	extra := map[string][]string{"record": {"-o", "/dev/null"}, "closewait": {"--threshold", "5"}}
	for _, cmd := range []string{"snapshot", "trace", "record", "top", "closewait", "backlog"} {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--port", "8080,x"}, `bad --port "x"`},
			{[]string{"--dst", "10.0.0.0/40"}, "bad --dst"},
			{[]string{"--pid", "1,-2"}, `bad --pid "-2"`},
			{[]string{"--comm", "kworker/u16:3-events"}, "cannot match: the kernel keeps 15 bytes"},
			{[]string{"--netns", "socklife-no-such-namespace"}, `no network namespace named "socklife-no-such-namespace"`},
			{[]string{"--netns", "4294967295"}, "no such network namespace"},
			{[]string{"-4", "-6"}, "-4 and -6 exclude each other"},
		} {
			expectBadInput(t, append(append([]string{cmd}, extra[cmd]...), tc.args...), tc.want)
		}
		if cmd != "snapshot" { // there --dport 0 is a socket with no peer, as in ss
			expectBadInput(t, append(append([]string{cmd}, extra[cmd]...), "--sport", "0"), "--sport 0 matches nothing")
		}
	}
}
