package testutil

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestOpenConns checks what tests rely on: the connections are spread over
// holders, each holder owns both ends of its share, they are established,
// and stopping a holder leaves nothing behind (no TIME-WAIT, no process).
func TestOpenConns(t *testing.T) {
	RequireRoot(t)
	const n, perHolder = 250, 100
	conns := openConns(t, n, perHolder)
	if len(conns.Holders) != 3 {
		t.Fatalf("%d connections at %d per holder: got %d holders, want 3", n, perHolder, len(conns.Holders))
	}
	total := 0
	for _, h := range conns.Holders {
		total += h.Conns
		held := socketInodes(t, h.PID)
		if len(held) != 2*h.Conns+1 {
			t.Errorf("holder %d holds %d sockets, want %d", h.PID, len(held), 2*h.Conns+1)
		}
		states := map[string]int{}
		for inode, state := range tcpStates(t, h.Listener) {
			if held[inode] {
				states[state]++
			}
		}
		if states["01"] != 2*h.Conns || states["0A"] != 1 || len(states) != 2 {
			t.Errorf("holder %d sockets on %s by state (hex, as /proc/net/tcp): %v, want 01:%d 0A:1", h.PID, h.Listener, states, 2*h.Conns)
		}
	}
	if total != n || conns.N != n || conns.Sockets() != 2*n+3 {
		t.Errorf("holders hold %d connections, N=%d, Sockets()=%d; want %d, %d, %d", total, conns.N, conns.Sockets(), n, n, 2*n+3)
	}
}

func TestOpenConnsCleanup(t *testing.T) {
	RequireRoot(t)
	var h Holder
	t.Run("open", func(t *testing.T) {
		h = openConns(t, 50, 100).Holders[0]
	})
	// The subtest's cleanup has run: the holder is reaped and its resets
	// leave no socket on the listener's address, not even in TIME-WAIT.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", h.PID)); !os.IsNotExist(err) {
		t.Errorf("holder %d still exists after cleanup (stat: %v)", h.PID, err)
	}
	WaitFor(t, 5*time.Second, "the holder's sockets to go", func() bool {
		return len(tcpStates(t, h.Listener)) == 0
	})
}

// socketInodes returns the inodes of the sockets pid has fds for.
func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		link, err := os.Readlink(dir + "/" + e.Name())
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	return inodes
}

// tcpStates returns the state, by inode, of the sockets in /proc/net/tcp
// whose local or remote address is addr: an independent view of what the
// holder set up. Keying by inode drops the lines /proc/net/tcp repeats when
// other tests churn connections while it is read; TIME-WAIT sockets all
// have inode 0.
func tcpStates(t *testing.T, addr netip.AddrPort) map[string]string {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ip := addr.Addr().As4()
	// The kernel prints the address as a host-order (little-endian here) u32.
	want := fmt.Sprintf("%08X:%04X", binary.LittleEndian.Uint32(ip[:]), addr.Port())
	states := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && (fields[1] == want || fields[2] == want) {
			states[fields[9]] = fields[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return states
}
