package render

import "testing"

func TestAppendTerm(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nginx", "nginx"},
		{"ok\nFORGED 0.0.0", `ok\nFORGED 0.0.0`},
		{"a\tb\rc", `a\tb\rc`},
		{"esc\x1b[2J", `esc\x1b[2J`},
		{"nul\x00del\x7f", `nul\x00del\x7f`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"csi\u009b", `csi\u009b`},
		{"héllo ☃", "héllo ☃"},
		{`back\slash`, `back\slash`},
	}
	for _, tt := range tests {
		if got := string(appendTerm(nil, tt.in)); got != tt.want {
			t.Errorf("appendTerm(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := termString(tt.in); got != tt.want {
			t.Errorf("termString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
