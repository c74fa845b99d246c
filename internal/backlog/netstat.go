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
}

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
		for i, name := range names {
			var dst *uint64
			switch name {
			case "ListenOverflows":
				dst = &n.ListenOverflows
			case "ListenDrops":
				dst = &n.ListenDrops
			default:
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
