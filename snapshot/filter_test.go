package snapshot

import (
	"net/netip"
	"testing"
)

func TestFilterMatch(t *testing.T) {
	web := Socket{
		Protocol:  TCP,
		Local:     netip.MustParseAddrPort("10.0.0.5:443"),
		Remote:    netip.MustParseAddrPort("192.168.1.9:51000"),
		Processes: []Process{{PID: 100, Comm: "nginx", FD: 7}, {PID: 101, Comm: "nginx", FD: 7}},
	}
	mapped := Socket{
		Protocol: TCP,
		Local:    netip.MustParseAddrPort("[::ffff:127.0.0.1]:8080"),
		Remote:   netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000"),
	}
	unixSock := Socket{Protocol: Unix, Path: "/run/x.sock"}

	tests := []struct {
		name string
		f    Filter
		s    Socket
		want bool
	}{
		{"zero filter matches", Filter{}, web, true},
		{"zero filter matches unix", Filter{}, unixSock, true},
		{"port matches local", Filter{Ports: []uint16{443}}, web, true},
		{"port matches remote", Filter{Ports: []uint16{51000}}, web, true},
		{"port misses", Filter{Ports: []uint16{80}}, web, false},
		{"sport is local only", Filter{SPorts: []uint16{51000}}, web, false},
		{"dport is remote only", Filter{DPorts: []uint16{51000}}, web, true},
		{"src cidr", Filter{Src: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, web, true},
		{"src cidr misses", Filter{Src: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}, web, false},
		{"dst address", Filter{Dst: []netip.Prefix{netip.MustParsePrefix("192.168.1.9/32")}}, web, true},
		{"v4 prefix matches v4-mapped", Filter{Src: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, mapped, true},
		{"pid matches second holder", Filter{PIDs: []int32{101}}, web, true},
		{"pid misses", Filter{PIDs: []int32{5}}, web, false},
		{"comm", Filter{Comms: []string{"nginx"}}, web, true},
		{"long comm matches the kernel's 15 bytes", Filter{Comms: []string{"myverylongservername"}},
			Socket{Protocol: TCP, Processes: []Process{{PID: 3, Comm: "myverylongserve"}}}, true},
		{"pid and comm must hold for one process", Filter{PIDs: []int32{100}, Comms: []string{"sshd"}}, web, false},
		{"port filter never matches unix", Filter{Ports: []uint16{0}}, unixSock, false},
		{"address filter never matches unix", Filter{Src: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}, unixSock, false},
		{"no owner, pid filter", Filter{PIDs: []int32{1}}, mapped, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Match(&tt.s); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "10.0.0.1", want: "10.0.0.1/32"},
		{in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{in: "::1", want: "::1/128"},
		{in: "[::1]", want: "::1/128"},
		{in: "fe80::/10", want: "fe80::/10"},
		{in: "::ffff:10.0.0.1", want: "10.0.0.1/32"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "10.0.0.300", bad: true},
		{in: "10.0.0.0/33", bad: true},
		{in: "example.com", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		p, err := ParsePrefix(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParsePrefix(%q) = %v, want an error", tt.in, p)
			}
			continue
		}
		if err != nil || p.String() != tt.want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
		}
	}
}
