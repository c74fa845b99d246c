package churn_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/churn"
	"github.com/socklife/socklife/internal/testutil"
)

// The kernel's own TCP counters are the witness that the generator did what
// it says: in a network namespace of its own, nothing else opens
// connections, so the counters move by exactly what the churn did.

const netnsChildEnv = "SOCKLIFE_CHURN_NETNS_CHILD" // connections to make

func TestMain(m *testing.M) {
	if n := os.Getenv(netnsChildEnv); n != "" {
		if err := netnsChild(n); err != nil {
			fmt.Fprintln(os.Stderr, "churn netns child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tcpCounters are the kernel counters the test compares, by SNMP name.
var tcpCounters = []string{
	"Tcp.ActiveOpens", "Tcp.PassiveOpens", "Tcp.AttemptFails", "Tcp.EstabResets",
	"Tcp.OutRsts", "TcpExt.ListenDrops", "TcpExt.TCPOrigDataSent",
}

type netnsReport struct {
	Conns int
	Delta map[string]int64
}

func TestKernelCountsEveryConnectionAndByte(t *testing.T) {
	testutil.RequireRoot(t)
	const n = 3000
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), netnsChildEnv+"="+strconv.Itoa(n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child in a new network namespace: %v", err)
	}
	var rep netnsReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("decoding the child's report %q: %v", out, err)
	}
	if rep.Conns != n {
		t.Errorf("Run(%d) reported %d connections", n, rep.Conns)
	}
	want := map[string]int64{
		"Tcp.ActiveOpens":  n, // one connect each
		"Tcp.PassiveOpens": n, // one accept each
		// Segments with new sequence space: the byte and the FIN, each way.
		"TcpExt.TCPOrigDataSent": 4 * n,
		// Clean closes only: no refused connect, no reset, no overflow.
		// Retransmissions are not compared: under an emulated CPU (the
		// kernel matrix) a retransmit timer can fire on loopback without
		// anything being wrong with the churn.
		"Tcp.AttemptFails": 0, "Tcp.EstabResets": 0, "Tcp.OutRsts": 0,
		"TcpExt.ListenDrops": 0,
	}
	for _, name := range tcpCounters {
		if got := rep.Delta[name]; got != want[name] {
			t.Errorf("%s moved by %d, want %d", name, got, want[name])
		}
	}
}

// netnsChild runs in the fresh namespace: loopback up, churn, report the
// counter deltas as JSON on stdout.
func netnsChild(arg string) error {
	n, err := strconv.Atoi(arg)
	if err != nil {
		return fmt.Errorf("connection count %q: %w", arg, err)
	}
	if err := testutil.LoopbackUp(); err != nil {
		return err
	}
	g, err := churn.New(churn.Config{})
	if err != nil {
		return err
	}
	defer g.Close()
	before, err := readTCPCounters()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := g.Run(ctx, n)
	if err != nil {
		return err
	}
	after, err := readTCPCounters()
	if err != nil {
		return err
	}
	rep := netnsReport{Conns: res.Conns, Delta: map[string]int64{}}
	for _, name := range tcpCounters {
		rep.Delta[name] = after[name] - before[name]
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// readTCPCounters reads /proc/net/snmp and /proc/net/netstat, whose
// sections are pairs of lines: names, then values.
func readTCPCounters() (map[string]int64, error) {
	out := map[string]int64{}
	for _, path := range []string{"/proc/net/snmp", "/proc/net/netstat"} {
		if err := readCounterPairs(path, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readCounterPairs(path string, out map[string]int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		names := strings.Fields(sc.Text())
		if !sc.Scan() {
			return fmt.Errorf("%s: section %s has no values", path, names[0])
		}
		values := strings.Fields(sc.Text())
		if len(values) != len(names) || len(names) == 0 {
			return fmt.Errorf("%s: section %s: %d names, %d values", path, names[0], len(names), len(values))
		}
		section := strings.TrimSuffix(names[0], ":")
		for i := 1; i < len(names); i++ {
			v, err := strconv.ParseInt(values[i], 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %s.%s: %w", path, section, names[i], err)
			}
			out[section+"."+names[i]] = v
		}
	}
	return sc.Err()
}
