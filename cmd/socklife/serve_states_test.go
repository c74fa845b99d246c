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
// v4-mapped, FIN_WAIT2, CLOSE_WAIT, TIME_WAIT) and a closed client whose
// FIN_WAIT2 became a timewait sock (ss shows its substate, FIN-WAIT-2).
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
	var st unix.Stat_t
	if err := unix.Stat(ns, &st); err != nil {
		t.Fatal(err)
	}
	inode := strconv.FormatUint(st.Ino, 10)
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
	// ss again: nothing in the namespace changed meanwhile
	if again := ssStateCounts(t, ns); again != want {
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
		s, ok := ssStateNamed(f[0])
		if !ok {
			t.Fatalf("ss printed a state we do not know: %q", line)
		}
		n[s]++
	}
	return n
}

// ssStateNamed is the state ss -tan prints as name (ESTAB, TIME-WAIT).
func ssStateNamed(name string) (tcpstate.State, bool) {
	for s := tcpstate.State(1); s < tcpstate.Max; s++ {
		if s.String() == name {
			return s, true
		}
	}
	return 0, false
}
