package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/snapshot"
)

// Tests against the servers people run: nginx (a master that listens,
// workers that accept) and redis (one port on two addresses), installed
// from Debian's packages by .ci/run and started here with their own config.

// traceLine is what these tests read of a `trace -o json` line.
type traceLine struct {
	Kind        string `json:"kind"`
	Sock        string `json:"sock"`
	Local       string `json:"local"`
	Remote      string `json:"remote"`
	Old         string `json:"old"`
	New         string `json:"new"`
	OwnerSource string `json:"owner_source"`
	Owner       *struct {
		PID int `json:"pid"`
	} `json:"owner"`
	Holders []holderLine `json:"holders"`
}

type holderLine struct {
	PID     int  `json:"pid"`
	Accepts bool `json:"accepts"`
}

func (l traceLine) ownerPID() int {
	if l.Owner == nil {
		return 0
	}
	return l.Owner.PID
}

// traceLines decodes trace's JSON lines; every line must be whole.
func traceLines(t *testing.T, out string) []traceLine {
	t.Helper()
	return jsonLines[traceLine](t, out)
}

// linesSoFar is the part of a running trace's output up to its last
// newline: a pipe may hand over the start of a line before its end.
func linesSoFar(out string) string {
	return out[:strings.LastIndexByte(out, '\n')+1]
}

// get makes one HTTP/1.0 request to 127.0.0.1:port and reads the answer
// to its end (nginx closes first), then closes; it returns the client port.
func get(t *testing.T, port uint16) uint16 {
	t.Helper()
	c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(c)
	if err != nil || !bytes.HasSuffix(body, []byte("ok\n")) {
		t.Fatalf("GET: %v, %q", err, body)
	}
	return uint16(c.LocalAddr().(*net.TCPAddr).Port)
}

// nginx, two workers, 40 requests: `trace --pid W` holds the handshake of
// every connection worker W accepted (matched by client port against an
// unfiltered trace), though the master made the listener: a connection not
// accepted yet belongs to every holder of its listener, and its lines name
// them.
func TestNginxTracePIDWorker(t *testing.T) {
	ngx := testutil.StartNginx(t, 2, 511)
	port := strconv.Itoa(int(ngx.Port))
	all := &testutil.SyncBuffer{}
	allRun := startSocklife(t, all, "trace", "-o", "json", "--port", port)
	perWorker := map[int]*testutil.SyncBuffer{}
	runs := []*socklifeRun{allRun}
	for _, w := range ngx.Workers {
		perWorker[w] = &testutil.SyncBuffer{}
		runs = append(runs, startSocklife(t, perWorker[w], "trace", "-o", "json", "--pid", strconv.Itoa(w)))
	}
	clients := map[uint16]bool{}
	for range 40 {
		clients[get(t, ngx.Port)] = true
	}

	// Who accepted what, from the unfiltered trace's accept lines.
	acceptedBy := map[uint16]int{}
	testutil.WaitFor(t, 10*time.Second, "the 40 accepts in the unfiltered trace", func() bool {
		for _, l := range traceLines(t, linesSoFar(all.String())) {
			if l.Kind == "accept" {
				acceptedBy[clientPort(l.Remote)] = l.ownerPID()
			}
		}
		return len(acceptedBy) >= len(clients)
	})
	// Each worker's trace has its own accepts last of each connection's
	// start: once they are in, so are the handshakes before them.
	for w, buf := range perWorker {
		testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("worker %d's accepts in its trace", w), func() bool {
			n := 0
			for _, l := range traceLines(t, linesSoFar(buf.String())) {
				if l.Kind == "accept" {
					n++
				}
			}
			return n >= countOf(acceptedBy, w)
		})
	}
	for _, r := range runs {
		r.stop(t)
	}
	for port, w := range acceptedBy {
		if !slices.Contains(ngx.Workers, w) {
			t.Errorf("client port %d accepted by %d, not a worker %v", port, w, ngx.Workers)
			continue
		}
		lines := traceLines(t, perWorker[w].String())
		var recv, est *traceLine
		for i, l := range lines {
			if l.Old == "SYN_RECV" && l.New == "ESTABLISHED" && clientPort(l.Remote) == port {
				est = &lines[i]
				// its LISTEN->SYN_RECV is the same sock's, before it
				for j := i - 1; j >= 0; j-- {
					if lines[j].Sock == l.Sock && lines[j].Old == "LISTEN" && lines[j].New == "SYN_RECV" {
						recv = &lines[j]
						break
					}
				}
			}
		}
		if recv == nil || est == nil {
			t.Errorf("worker %d accepted client port %d, but trace --pid %d lacks its handshake (LISTEN->SYN_RECV %v, SYN_RECV->ESTABLISHED %v)",
				w, port, w, recv != nil, est != nil)
			continue
		}
		for _, l := range []*traceLine{recv, est} {
			holds := slices.ContainsFunc(l.Holders, func(h holderLine) bool { return h.PID == w })
			if l.OwnerSource != "listener" || !holds || len(l.Holders) != 3 {
				t.Errorf("client port %d, %s->%s: owner_source %q, holders %+v; want the listener's three holders (master and workers) with %d",
					port, l.Old, l.New, l.OwnerSource, l.Holders, w)
			}
		}
	}
	if len(acceptedBy) < len(clients) {
		t.Errorf("%d accepts for %d connections", len(acceptedBy), len(clients))
	}
}

func clientPort(addr string) uint16 {
	i := strings.LastIndexByte(addr, ':')
	p, _ := strconv.Atoi(addr[i+1:])
	return uint16(p)
}

func countOf(m map[uint16]int, v int) int {
	n := 0
	for _, x := range m {
		if x == v {
			n++
		}
	}
	return n
}

// queueLen is the accept-queue length sock_diag reports for the listener on port.
func queueLen(t *testing.T, port uint16) uint32 {
	t.Helper()
	res, err := snapshot.Dump(context.Background(), snapshot.Options{TCP: true, IPv4: true, States: tcpstate.Of(tcpstate.Listen)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Sockets {
		if s.Local.Port() == port {
			return s.RecvQ
		}
	}
	t.Fatalf("no listener on port %d", port)
	return 0
}

// nginx with its workers stopped (kill -STOP) and 14 clients on a listener
// of backlog 8: `backlog`, started 1.5 s into the stall as on-call engineers
// start it, flags the stall naming the holders (a worker among them, none
// seen accepting), its age a lower bound; every interval that ends with the
// queue over its backlog was partly full; `backlog --pid WORKER` lists the
// listener; `--for` exits 1.
func TestNginxBacklogStalledWorkers(t *testing.T) {
	const backlog, clients = 8, 14
	ngx := testutil.StartNginx(t, 2, backlog)
	for _, w := range ngx.Workers {
		if err := syscall.Kill(w, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	stallBegan := time.Now()
	for range clients {
		wg.Go(func() {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ngx.Port))))
			if err == nil {
				<-ctx.Done()
				c.Close()
			}
		})
	}
	testutil.WaitFor(t, 10*time.Second, "the accept queue to fill", func() bool { return queueLen(t, ngx.Port) > backlog })
	// On purpose: socklife starts after the stall began, as at 3 a.m.
	time.Sleep(time.Until(stallBegan.Add(1500 * time.Millisecond)))

	port := strconv.Itoa(int(ngx.Port))
	stdout, stderr, code := runCLI(t, "backlog", "--for", "2s", "--interval", "500ms", "--stall", "500ms", "--port", port, "-o", "json")
	if code != 1 || !strings.Contains(stderr, "socklife: 1 stalls") {
		t.Errorf("exit %d, stderr %q; want 1 and one stall", code, stderr)
	}
	var begins []render.BacklogStallJSON
	var rows []render.BacklogListenerJSON
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var r render.BacklogJSON
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		for _, s := range r.Stalls {
			if s.Event == "begin" {
				begins = append(begins, s)
			}
		}
		rows = append(rows, r.Listeners...)
	}
	if len(begins) != 1 {
		t.Fatalf("stall begins %+v, want one", begins)
	}
	b := begins[0]
	var pids []int
	for _, h := range b.Holders {
		pids = append(pids, int(h.PID))
	}
	if !b.StalledLower || b.Acceptors != 0 || !slices.ContainsFunc(ngx.Workers, func(w int) bool { return slices.Contains(pids, w) }) {
		t.Errorf("stall %+v: want its age a lower bound, no acceptor seen, and the holders (workers %v) named", b, ngx.Workers)
	}
	for i, r := range rows {
		if r.Queue > r.Backlog && r.FullFraction <= 0 {
			t.Errorf("interval %d ended with queue %d over backlog %d, full fraction %v", i, r.Queue, r.Backlog, r.FullFraction)
		}
		if r.Stalled && !r.StalledLower {
			t.Errorf("interval %d: stalled %v ms, not marked a lower bound", i, *r.StalledMillis)
		}
	}
	if len(rows) == 0 || rows[0].Queue != backlog+1 {
		t.Errorf("listener rows %+v, want the queue at backlog+1 from the first", rows)
	}

	stdout, _, _ = runCLI(t, "backlog", "--for", "600ms", "--interval", "500ms", "--pid", strconv.Itoa(ngx.Workers[0]), "-o", "json")
	if !strings.Contains(stdout, `"local":"127.0.0.1:`+port+`"`) {
		t.Errorf("backlog --pid %d (a worker that never accepted while socklife ran) does not list its listener:\n%s", ngx.Workers[0], stdout)
	}
}

// redis on 127.0.0.1 and ::1, one port: a connection to [::1] is recorded
// with the listener it came from, [::1]:PORT, and one to 127.0.0.1 with
// 127.0.0.1:PORT.
func TestRedisListenerByAddress(t *testing.T) {
	rd := testutil.StartRedis(t, "127.0.0.1", "::1")
	port := strconv.Itoa(int(rd.Port))
	path := t.TempDir() + "/rec.ndjson"
	run := startRecord(t, path, "--sport", port)
	for _, host := range []string{"::1", "127.0.0.1"} {
		c, err := net.Dial("tcp", net.JoinHostPort(host, port))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "PING\r\n"); err != nil {
			t.Fatal(err)
		}
		reply := make([]byte, 7)
		if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "+PONG\r\n" {
			t.Fatalf("redis on %s: %v %q", host, err, reply)
		}
		c.Close()
	}
	testutil.WaitFor(t, 10*time.Second, "both server-side records", func() bool { return len(records(t, path)) >= 2 })
	run.stop(t)
	got := map[string]string{}
	for _, r := range records(t, path) {
		if r["role"] == "server" {
			local, _ := r["local"].(string)
			listener, _ := r["listener"].(string)
			got[local[:strings.LastIndexByte(local, ':')]] = listener
		}
	}
	want := map[string]string{"[::1]": "[::1]:" + port, "127.0.0.1": "127.0.0.1:" + port}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("listeners by local address %v, want %v", got, want)
	}
}

// 12 clients making HTTP/1.0 requests to nginx for 6 s: each of their
// sockets sits in CLOSE_WAIT from nginx's FIN until the client closes it,
// a few milliseconds later, all the time. That is no leak: closewait
// --threshold 5 on the client exits 0. A process that holds 12 CLOSE_WAIT
// sockets for 7 s is one: --threshold 10 exits 1, once they have stayed
// --min-age (5 s).
func TestCloseWaitNginxClients(t *testing.T) {
	ngx := testutil.StartNginx(t, 2, 511)
	me := strconv.Itoa(os.Getpid())
	run := startSocklife(t, nil, "closewait", "--threshold", "5", "--pid", me, "--for", "6s", "--interval", "100ms")
	var wg sync.WaitGroup
	var requests atomic.Int64
	for range 12 {
		wg.Go(func() {
			for {
				select {
				case <-run.exited:
					return
				default:
				}
				c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ngx.Port))))
				if err != nil {
					continue
				}
				io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
				io.ReadAll(c)
				time.Sleep(20 * time.Millisecond) // the client's own work before close()
				c.Close()
				requests.Add(1)
			}
		})
	}
	code := run.exitCode(t, 20*time.Second)
	wg.Wait()
	if code != 0 {
		t.Errorf("closewait during %d HTTP/1.0 requests: exit %d, want 0; stdout %q", requests.Load(), code, run.stdout.String())
	}
	if !strings.Contains(run.stdout.String(), "ok: no process crossed the CLOSE_WAIT limits (threshold 5; sockets at least 5s old)") {
		t.Errorf("stdout %q", run.stdout.String())
	}
}

func TestCloseWaitHeldSockets(t *testing.T) {
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	var clients []net.Conn
	var servers []interface{ File() (*os.File, error) }
	for range 12 {
		c, s := testutil.Pair(t, ln)
		clients = append(clients, c)
		servers = append(servers, s)
	}
	holder := holdInChild(t, servers...)
	run := startSocklife(t, nil, "closewait", "--threshold", "10", "--pid", strconv.Itoa(holder.Process.Pid),
		"--for", "20s", "--interval", "100ms", "-o", "json")
	closed := time.Now()
	for _, c := range clients {
		c.Close()
	}
	if code := run.exitCode(t, 30*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1; stdout %q stderr %q", code, run.stdout.String(), run.stderr.String())
	}
	var v closewaitVerdict
	if err := json.Unmarshal([]byte(run.stdout.String()), &v); err != nil {
		t.Fatal(err)
	}
	// the sockets entered CLOSE_WAIT after the test closed the clients;
	// they count only once 5 s old
	if waited := time.Since(closed); waited < 5*time.Second {
		t.Errorf("alerted %v after the sockets entered CLOSE_WAIT, before --min-age 5s", waited)
	}
	if !v.Alert || len(v.Offenders) != 1 || v.Offenders[0].Count != 12 || int(v.Offenders[0].PID) != holder.Process.Pid ||
		v.Offenders[0].OldestMs < 5000 || v.MinAgeMs != 5000 || v.Threshold == nil || *v.Threshold != 10 || v.Growth != nil {
		t.Errorf("verdict %+v, want the holder with 12 sockets at least 5 s old, threshold 10 and no growth limit", v)
	}
}

// A SYN flood in a namespace of its own: SYN-ACKs are dropped on their
// way in to the clients (nftables), so the clients' SYNs fill the
// listener's SYN queue (its backlog, 8) and the rest are answered with SYN
// cookies, while the listener retransmits the SYN-ACKs it queued, as it
// does for the spoofed sources of a real flood. (Dropped on the way out
// instead, the listener's sends fail and it retransmits nothing.) backlog, not
// told of the namespace, lists its listener once events come from it
// (backlog 8, not 0), shows the cookie counters and the full SYN queue,
// says "SYN flood" and exits 1.
func TestBacklogSynFlood(t *testing.T) {
	nft := testutil.ServerBinary(t, "nft")
	nsenter := testutil.ServerBinary(t, "nsenter")
	ns := testutil.NamedNetns(t)
	var st syscall.Stat_t
	if err := syscall.Stat(ns, &st); err != nil {
		t.Fatal(err)
	}
	inode := st.Ino
	var lfd int
	var port uint16
	testutil.InNetns(t, ns, func() { lfd, port = testutil.RawListener(t, [4]byte{127, 0, 0, 1}, 0, 8) })
	var clients []int
	t.Cleanup(func() {
		for _, fd := range clients {
			unix.Close(fd)
		}
	})
	// connect from inside the namespace; flood: don't wait for the handshake
	connect := func(flood bool) {
		testutil.InNetns(t, ns, func() {
			flags := unix.SOCK_STREAM | unix.SOCK_CLOEXEC
			if flood {
				flags |= unix.SOCK_NONBLOCK
			}
			fd, err := unix.Socket(unix.AF_INET, flags, 0)
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, fd)
			err = unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: int(port)})
			if err != nil && !(flood && err == unix.EINPROGRESS) {
				t.Fatal(err)
			}
		})
	}

	out := &testutil.SyncBuffer{}
	run := startSocklife(t, out, "backlog", "--for", "6s", "--interval", "500ms", "-o", "json")
	connect(false) // one whole connection: events from the namespace
	nfd, _, err := unix.Accept(lfd)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(nfd)
	testutil.WaitFor(t, 5*time.Second, "the namespace's listener in a report", func() bool {
		for _, r := range backlogReports(t, out.String()) {
			for _, l := range r.Listeners {
				if uint64(l.Netns) == inode && l.Local == "127.0.0.1:"+strconv.Itoa(int(port)) {
					if l.Backlog != 8 {
						t.Fatalf("listener of another namespace with backlog %d, want 8", l.Backlog)
					}
					return true
				}
			}
		}
		return false
	})
	rules := "table inet socklife_test {\n chain in {\n  type filter hook input priority 0; policy accept;\n" +
		"  tcp flags & (syn | ack) == syn | ack drop\n }\n}\n"
	nftCmd := exec.Command(nsenter, "--net="+ns, nft, "-f", "-")
	nftCmd.Stdin = strings.NewReader(rules)
	if b, err := nftCmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, b)
	}
	for range 30 {
		connect(true)
	}
	if code := run.exitCode(t, 20*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, run.stderr.String())
	}
	if want := fmt.Sprintf("socklife: SYN flood in netns %d: ", inode); !strings.Contains(run.stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", run.stderr.String(), want)
	}
	var cookies uint64
	var flood, synFull bool
	for _, r := range backlogReports(t, out.String()) {
		for _, n := range r.Netns {
			if uint64(n.Netns) == inode {
				cookies = max(cookies, n.SyncookiesSentTotal)
				flood = flood || n.SynFlood
			}
		}
		for _, l := range r.Listeners {
			synFull = synFull || uint64(l.Netns) == inode && l.SynQueueFull
		}
	}
	if cookies == 0 || !flood || !synFull {
		t.Errorf("SYN cookies sent %d, a flood flagged %v, the SYN queue full %v: want all\n%s", cookies, flood, synFull, out.String())
	}
}

func backlogReports(t *testing.T, out string) []render.BacklogJSON {
	t.Helper()
	return jsonLines[render.BacklogJSON](t, out)
}

// top --pid WORKER lists the nginx listener the worker holds (the master
// made it; the worker has accepted nothing while top ran), with its holders.
func TestNginxTopPIDWorker(t *testing.T) {
	ngx := testutil.StartNginx(t, 2, 511)
	worker := ngx.Workers[1]
	run := startSocklife(t, nil, "top", "-o", "json", "-n", "2", "--interval", "200ms", "--pid", strconv.Itoa(worker))
	if code := run.exitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr %q", code, run.stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(run.stdout.String()), "\n")
	var f render.FrameJSON
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &f); err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.1:" + strconv.Itoa(int(ngx.Port))
	if len(f.Listeners) != 1 || f.Listeners[0].Local != want || len(f.Listeners[0].Holders) != 3 {
		t.Errorf("listeners %+v, want %s held by nginx's master and two workers", f.Listeners, want)
	}
}
