// Package netdb reads services(5), /etc/services: port names both ways, as
// getservbyname and getservbyport give them, without cgo. ss filters take
// names (`dport = :https`) and ss -r prints them.
package netdb

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Path is the services file.
const Path = "/etc/services"

// Services is what a services file says, for one lookup direction each.
type Services struct {
	ports map[string]int    // "name/proto", aliases too
	names map[string]string // "port/proto"
}

// Parse reads services(5) lines, "name port/proto aliases... # comment".
// For a name or a port given twice the first line wins, as in the C
// library's lookups.
func Parse(r io.Reader) *Services {
	s := &Services{ports: map[string]int{}, names: map[string]string{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		num, proto, ok := strings.Cut(fields[1], "/")
		port, err := strconv.Atoi(num)
		if !ok || err != nil || port < 0 || port > 65535 {
			continue
		}
		if _, dup := s.names[fields[1]]; !dup {
			s.names[fields[1]] = fields[0]
		}
		for _, name := range append([]string{fields[0]}, fields[2:]...) {
			if _, dup := s.ports[name+"/"+proto]; !dup {
				s.ports[name+"/"+proto] = port
			}
		}
	}
	return s
}

// Port is getservbyname(name, proto): exact, case-sensitive names and
// aliases.
func (s *Services) Port(name, proto string) (int, bool) {
	p, ok := s.ports[name+"/"+proto]
	return p, ok
}

// Name is getservbyport(port, proto)'s name, "" for none.
func (s *Services) Name(port int, proto string) string {
	return s.names[strconv.Itoa(port)+"/"+proto]
}

// System is the host's services file, read once; empty when it is missing.
var System = sync.OnceValue(func() *Services {
	f, err := os.Open(Path)
	if err != nil {
		return Parse(strings.NewReader(""))
	}
	defer f.Close()
	return Parse(f)
})
