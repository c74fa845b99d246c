package filter

import "testing"

// Ports that parse are ranges that hold what was typed: LO <= HI, no 0
// unless allowed.
func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"80", "0", "1-65535", "90-80", " 443 ", "70000", "-", "1-", "8080-8080", "+5"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, zero bool) {
		ps, err := parsePorts("--port", []string{s}, zero)
		if err != nil {
			return
		}
		for _, r := range ps {
			if r.Lo > r.Hi || r.Lo == 0 && !zero {
				t.Errorf("%q (zero %v): range %d-%d", s, zero, r.Lo, r.Hi)
			}
		}
	})
}

// Any --comm is compiled or refused with an error, never a panic (the
// length check parses it a second time), and one that is accepted can
// match a name the kernel keeps.
func FuzzParseComm(f *testing.F) {
	for _, s := range []string{"nginx", "^redis$", "a{1,3}", "nginx|systemd-resolved", "^.{16}", "a(", `\pL{20}`, "(?i)x{15}y", "x{1001}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		re, err := parseComm(s)
		if err != nil {
			return
		}
		if n := minLen(mustParse(s), nil, 0); n > CommLen {
			t.Errorf("%q accepted, its shortest match has %d bytes", s, n)
		}
		_ = re.MatchString("kworker/u8:1-ev")
	})
}
