package main

import "testing"

// A --max-size that parses is a positive size that fits an int64.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4096", "64K", "100M", "1G", "0", "10X", "K", "-1G", "8589934591G", "1k", "+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err == nil && s != "" && n <= 0 {
			t.Errorf("%q: size %d", s, n)
		}
	})
}
