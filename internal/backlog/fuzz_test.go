package backlog

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// /proc/net/netstat is the kernel's text, which a newer kernel may shape
// differently: the parser returns an error, never panics, and what it
// returns is what the TcpExt lines say. Seeded with a real file
// (testdata/netstat, this kernel's /proc/net/netstat).
func FuzzParseNetstat(f *testing.F) {
	real, err := os.ReadFile("testdata/netstat")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(real))
	f.Add("TcpExt: ListenOverflows ListenDrops\nTcpExt: 1 2\n")
	f.Add("TcpExt: ListenDrops\nTcpExt: x\n")
	f.Add("TcpExt:\nTcpExt:\n")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseNetstat(strings.NewReader(s))
		if err != nil {
			return
		}
		// Every counter read is a number in the input.
		for name, v := range n.counters() {
			if *v != 0 && !strings.Contains(s, fmt.Sprint(*v)) {
				t.Errorf("%s = %d, which the input does not hold", name, *v)
			}
		}
	})
}
