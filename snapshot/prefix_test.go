package snapshot

import (
	"testing"
)

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
