package backlog

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Netstat holds the TcpExt listen counters of one network namespace.
type Netstat struct {
	// ListenOverflows: SYNs and final ACKs dropped because an accept
	// queue was full. ListenDrops: those and every other listen drop.
	ListenOverflows, ListenDrops uint64
	// A SYN that finds its listener's SYN (request) queue full is answered
	// with a cookie instead of queued (ReqQFullDoCookies, with
	// net.ipv4.tcp_syncookies=1, or for every SYN with 2) or dropped
	// (ReqQFullDrop, with 0): the kernel's "Possible SYN flooding".
	// SyncookiesSent counts the cookies, SyncookiesRecv the final ACKs
	// that brought a valid one back, SyncookiesFailed the invalid ones.
	SyncookiesSent, SyncookiesRecv, SyncookiesFailed uint64
	ReqQFullDoCookies, ReqQFullDrop                  uint64
}

// counters lists n's counters by their /proc/net/netstat names.
func (n *Netstat) counters() map[string]*uint64 {
	return map[string]*uint64{
		"ListenOverflows": &n.ListenOverflows, "ListenDrops": &n.ListenDrops,
		"SyncookiesSent": &n.SyncookiesSent, "SyncookiesRecv": &n.SyncookiesRecv, "SyncookiesFailed": &n.SyncookiesFailed,
		"TCPReqQFullDoCookies": &n.ReqQFullDoCookies, "TCPReqQFullDrop": &n.ReqQFullDrop,
	}
}

// Sub is the growth from base to n; the counters only grow.
func (n Netstat) Sub(base Netstat) Netstat {
	return n.combine(base, func(a, b uint64) uint64 { return a - b })
}

// Add sums growths.
func (n Netstat) Add(o Netstat) Netstat {
	return n.combine(o, func(a, b uint64) uint64 { return a + b })
}

func (n Netstat) combine(o Netstat, op func(a, b uint64) uint64) Netstat {
	out := n
	theirs := o.counters()
	for name, v := range out.counters() {
		*v = op(*v, *theirs[name])
	}
	return out
}

// SynFlood says SYNs found a full SYN queue: the kernel answered with
// cookies or dropped them.
func (n Netstat) SynFlood() bool { return n.ReqQFullDoCookies > 0 || n.ReqQFullDrop > 0 }

// ReadNetstat reads path (/proc/net/netstat, or /proc/PID/net/netstat for
// PID's namespace).
func ReadNetstat(path string) (Netstat, error) {
	f, err := os.Open(path)
	if err != nil {
		return Netstat{}, fmt.Errorf("reading netns counters: %w", err)
	}
	defer f.Close()
	n, err := parseNetstat(f)
	if err != nil {
		return Netstat{}, fmt.Errorf("parsing %s: %w", path, err)
	}
	return n, nil
}

// parseNetstat reads the "TcpExt:" pair of lines: names, then values.
func parseNetstat(r io.Reader) (Netstat, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 16<<10), 1<<20)
	var names []string
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "TcpExt:") {
			continue
		}
		fields := strings.Fields(line)[1:]
		if names == nil {
			names = fields
			continue
		}
		if len(fields) != len(names) {
			return Netstat{}, fmt.Errorf("TcpExt has %d names and %d values", len(names), len(fields))
		}
		var n Netstat
		counters := n.counters()
		for i, name := range names {
			dst, ok := counters[name]
			if !ok {
				continue
			}
			v, err := strconv.ParseUint(fields[i], 10, 64)
			if err != nil {
				return Netstat{}, fmt.Errorf("TcpExt %s: %w", name, err)
			}
			*dst = v
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return Netstat{}, err
	}
	return Netstat{}, fmt.Errorf("no TcpExt counters")
}
