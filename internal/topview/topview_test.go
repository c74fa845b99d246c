package topview

import "testing"

func TestParseFilter(t *testing.T) {
	tests := []struct {
		in   string
		want matcher
	}{
		{"4242", matcher{pid: 4242}},
		{":8080", matcher{port: 8080}},
		{"nginx", matcher{comm: "nginx"}},
		{"", matcher{}},
		{":http", matcher{comm: ":http"}},
	}
	for _, tt := range tests {
		if got := parseFilter(tt.in); got != tt.want {
			t.Errorf("parseFilter(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
