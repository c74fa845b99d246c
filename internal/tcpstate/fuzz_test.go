package tcpstate

import "testing"

// A --state that parses names states the kernel has, and nothing else.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"established", "all", "big", "time_wait", "TIME-WAIT", "bogus", "", "connected", "syn-recv"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseFilter([]string{s})
		if err != nil {
			return
		}
		if m == 0 || m&^All != 0 {
			t.Errorf("%q: mask %#x, want states in %#x", s, m, All)
		}
	})
}
