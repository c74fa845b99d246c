package netdb

import (
	"strings"
	"testing"
)

func TestServices(t *testing.T) {
	s := Parse(strings.NewReader(`# comment
http		80/tcp		www		# WorldWideWeb HTTP
http		80/udp
https		443/tcp
domain		53/tcp
domain		53/udp
www-alt		80/tcp
broken		notaport/tcp
toolarge	70000/tcp
`))
	for _, tc := range []struct {
		name, proto string
		port        int
		ok          bool
	}{
		{"http", "tcp", 80, true},
		{"www", "tcp", 80, true}, // an alias
		{"https", "tcp", 443, true},
		{"https", "udp", 0, false},
		{"HTTP", "tcp", 0, false}, // case-sensitive, as getservbyname
		{"broken", "tcp", 0, false},
		{"toolarge", "tcp", 0, false},
	} {
		if p, ok := s.Port(tc.name, tc.proto); p != tc.port || ok != tc.ok {
			t.Errorf("Port(%q, %q) = %d, %v; want %d, %v", tc.name, tc.proto, p, ok, tc.port, tc.ok)
		}
	}
	for _, tc := range []struct {
		port  int
		proto string
		want  string
	}{
		{80, "tcp", "http"}, // the first line for the port wins
		{53, "udp", "domain"},
		{443, "udp", ""},
		{8080, "tcp", ""},
	} {
		if got := s.Name(tc.port, tc.proto); got != tc.want {
			t.Errorf("Name(%d, %q) = %q, want %q", tc.port, tc.proto, got, tc.want)
		}
	}
}
