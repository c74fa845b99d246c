package main

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// socklife_tcp_sockets of a namespace equals what ss -tan lists there, state
// by state, whether the kernel's iterator counts (the default) or a dump of
// every socket does (a filter on ports: the sockets it keeps, here all). The
// namespace holds the ss zoo (listeners, established pairs over v4, v6 and
// v4-mapped, FIN_WAIT2, CLOSE_WAIT, TIME_WAIT), a closed client whose
// FIN_WAIT2 became a timewait sock (ss shows its substate, FIN-WAIT-2), and
// then a handshake stuck at both ends (SYN_SENT, SYN_RECV).
func TestServeStatesOfANamespace(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireSS(t)
	ns := testutil.NamedNetns(t)
	testutil.InNetns(t, ns, func() {
		testutil.NewSSZoo(t, 6000, 8000)
		ln := testutil.PlainListener(t)
		cl, sv := testutil.Pair(t, ln)
		cl.Close() // an orphan once its FIN is acked: a timewait sock in FIN_WAIT2
		sv.Read(make([]byte, 1))
	})
	var want [tcpstate.Max]int
	// the orphan's FIN_WAIT1 lasts until its FIN's ACK, which may be delayed
	testutil.WaitFor(t, 5*time.Second, "ss to show the zoo and the orphan settled", func() bool {
		want = ssStateCounts(t, ns)
		return want[tcpstate.FinWait1] == 0 && want[tcpstate.FinWait2] == 2 && want[tcpstate.CloseWait] == 2 && want[tcpstate.TimeWait] == 1
	})
	// info says how serve counts here: the iterator on every kernel we
	// test (5.9+)
	out, stderr, code := runCLI(t, "info", "-o", "json")
	if code != 0 {
		t.Fatalf("info: exit %d: %s", code, stderr)
	}
	var info kernelInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.ServeStates, "iter/tcp") {
		t.Errorf("info's serve_states %q, want the iterator", info.ServeStates)
	}
	checkBothPaths(t, ns, want)

	// Handshakes that never finish: SYN-ACKs dropped in the namespace
	// leave a client in SYN_SENT and, at the listener, a request sock
	// (NEW_SYN_RECV in the kernel) that ss lists as SYN-RECV. Where nft is
	// missing (the kernel matrix VMs) this part skips.
	t.Run("handshakes", func(t *testing.T) {
		nft := testutil.ServerBinary(t, "nft")
		rules := "table inet socklife_test {\n chain in {\n  type filter hook input priority 0; policy accept;\n" +
			"  tcp flags & (syn | ack) == syn | ack drop\n }\n}\n"
		cmd := exec.Command("nsenter", "--net="+ns, nft, "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v: %s", err, b)
		}
		testutil.InNetns(t, ns, func() {
			ln := testutil.PlainListener(t)
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(fd) })
			err = unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: int(testutil.Port(ln))})
			if err != unix.EINPROGRESS {
				t.Fatalf("connect: %v, want EINPROGRESS", err)
			}
		})
		var more [tcpstate.Max]int
		testutil.WaitFor(t, 5*time.Second, "ss to show the handshake stuck at both ends", func() bool {
			more = ssStateCounts(t, ns)
			return more[tcpstate.SynSent] == 1 && more[tcpstate.SynRecv] == 1
		})
		checkBothPaths(t, ns, more)
	})
}

// checkBothPaths starts serve on the namespace at path twice, once
// counting with the iterator and once with a dump (a filter on ports that
// keeps every socket), and compares socklife_tcp_sockets with want, what
// ss listed there; ss again at the end says nothing changed meanwhile.
func checkBothPaths(t *testing.T, path string, want [tcpstate.Max]int) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	inode := strconv.FormatUint(st.Ino, 10)
	for _, c := range []struct {
		name, hook string
		args       []string
	}{
		{"iterator", "iter/tcp", nil},
		{"dump", "sock_diag", []string{"--port", "1-65535"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, base := startServe(t, append([]string{"--collect-interval", "100ms", "--netns", inode}, c.args...)...)
			_, mfs := scrapeFamilies(t, base)
			if got := value(series(mfs, "socklife_hook_info", map[string]string{"feature": "states", "hook": c.hook})); got != 1 {
				t.Errorf("socklife_hook_info{feature=states,hook=%s} = %v, want 1", c.hook, got)
			}
			for s := tcpstate.State(1); s < tcpstate.Max; s++ {
				m := series(mfs, "socklife_tcp_sockets", map[string]string{"netns": inode, "state": s.KernelName()})
				if m == nil && want[s] == 0 {
					continue
				}
				if got := value(m); got != float64(want[s]) {
					t.Errorf("socklife_tcp_sockets{state=%s} = %v, ss lists %d", s.KernelName(), got, want[s])
				}
			}
		})
	}
	if again := ssStateCounts(t, path); again != want {
		t.Errorf("the namespace changed under the test: ss showed %v, then %v", want, again)
	}
}

// ssStateCounts counts what ss -tan lists in the namespace at path, by state.
func ssStateCounts(t *testing.T, path string) [tcpstate.Max]int {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+path, "ss", "-tanH").Output()
	if err != nil {
		t.Fatalf("ss -tanH in %s: %v", path, err)
	}
	var n [tcpstate.Max]int
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		s, ok := testutil.SSState(f[0])
		if !ok {
			t.Fatalf("ss printed a state we do not know: %q", line)
		}
		n[s]++
	}
	return n
}
