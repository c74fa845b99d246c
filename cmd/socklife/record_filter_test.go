package main

import (
	"regexp"
	"testing"

	"github.com/socklife/socklife/internal/filter"
	"github.com/socklife/socklife/internal/live"
	"github.com/socklife/socklife/internal/tcpstate"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "4096": 4096, "64K": 64 << 10, "64k": 64 << 10, "100M": 100 << 20, "1G": 1 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "-1", "K", "1.5M", "1T", "99999999999G"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}

// --comm and --state apply to whole connections; listeners are never records.
func TestRecordWants(t *testing.T) {
	c := live.Conn{
		Role: live.RoleServer, State: tcpstate.LastAck, OwnerKnown: true, Comm: "nginx",
		History: []live.Step{{State: tcpstate.Established}, {State: tcpstate.CloseWait}, {State: tcpstate.LastAck}},
	}
	listener := live.Conn{Role: live.RoleListener, State: tcpstate.Listen}
	for _, tc := range []struct {
		name   string
		c      live.Conn
		comm   string // a pattern, as pgrep's
		states tcpstate.Mask
		want   bool
	}{
		{"everything", c, "", 0, true},
		{"its comm", c, "nginx", 0, true},
		{"part of its comm", c, "ngi", 0, true},
		{"other comm", c, "curl", 0, false},
		{"anchored, not its comm", c, "^gin", 0, false},
		{"a state it went through", c, "", tcpstate.Of(tcpstate.CloseWait), true},
		{"a state it never had", c, "", tcpstate.Of(tcpstate.FinWait1), false},
		{"listener", listener, "", 0, false},
	} {
		rest := &filter.Filter{}
		if tc.comm != "" {
			rest.Comms = []*regexp.Regexp{regexp.MustCompile(tc.comm)}
		}
		if got := wants(&tc.c, rest, tc.states); got != tc.want {
			t.Errorf("%s: wants = %v, want %v", tc.name, got, tc.want)
		}
	}
}
