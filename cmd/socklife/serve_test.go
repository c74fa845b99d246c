package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// startServe runs `socklife serve` on a free loopback port and waits until
// /metrics answers; it returns the base URL.
func startServe(t *testing.T, args ...string) (*socklifeRun, string) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(int(testutil.FreePort(t)))
	run := startSocklife(t, nil, append([]string{"serve", "--web.listen-address", addr}, args...)...)
	base := "http://" + addr
	testutil.WaitFor(t, 10*time.Second, "serve to answer", func() bool {
		_, err := httpGet(base + "/metrics")
		return err == nil
	})
	return run, base
}

func httpGet(u string) (string, error) {
	resp, err := http.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return string(b), err
}

// scrapeFamilies scrapes base/metrics and parses it.
func scrapeFamilies(t *testing.T, base string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	body, err := httpGet(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("scrape does not parse: %v\n%s", err, body)
	}
	return body, mfs
}

// series finds the metric of family name whose labels include want.
func series(mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is a gauge's or counter's value, NaN-free: -1 when absent.
func value(m *dto.Metric) float64 {
	switch {
	case m == nil:
		return -1
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return -1
}

// overflowListener listens with backlog 4 and never accepts: 5 connections
// fill its queue (it holds backlog+1), then the SYNs of 3 more are
// dropped, counted in its sk_drops; those clients give up (closed) so the
// count stays put. It returns the port and the sk_drops sock_diag reads.
func overflowListener(t *testing.T) (uint16, uint32) {
	t.Helper()
	_, port := testutil.RawListener(t, [4]byte{127, 0, 0, 1}, 0, 4)
	for range 5 {
		c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	var pending []int
	for range 3 {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		pending = append(pending, fd)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: int(port)}); err != unix.EINPROGRESS {
			t.Fatalf("connect: %v, want EINPROGRESS (the SYN waiting on a full queue)", err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "3 SYNs dropped", func() bool { return listenerDrops(t, port) >= 3 })
	for _, fd := range pending {
		unix.Close(fd) // no more SYN retransmits: the count stays
	}
	return port, listenerDrops(t, port)
}

// listenerDrops is the sk_drops of the loopback listener on port, as
// ss -tlnm shows it (d).
func listenerDrops(t *testing.T, port uint16) uint32 {
	t.Helper()
	res, err := snapshot.Dump(context.Background(), snapshot.Options{TCP: true, IPv4: true, States: tcpstate.Of(tcpstate.Listen), Info: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Sockets {
		if s.Local.Port() == port && s.MemInfo != nil {
			return s.MemInfo.Drops
		}
	}
	t.Fatalf("no listener on port %d", port)
	return 0
}

// slowAcceptor accepts n connections, each 50 ms after the last: their
// accept waits run from 50 ms to n*50 ms.
func slowAcceptor(t *testing.T, n int) (port uint16, done <-chan struct{}) {
	t.Helper()
	ln := testutil.PlainListener(t)
	for range n {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for range n {
			time.Sleep(50 * time.Millisecond) // the slowness under test
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// open until the end: a close would put our client ends in
			// CLOSE_WAIT beside the 12 leaked
			t.Cleanup(func() { c.Close() })
		}
	}()
	return testutil.Port(ln), ch
}

// The picture: a process leaking 12 CLOSE_WAIT sockets, a listener
// (backlog 4) nobody accepts on that overflows, and a slow acceptor. The
// scrape says exactly that: 12 for our pid with our fds and fd limit, the
// full queue, sk_drops as ss reads it, stalled, and an accept-wait
// histogram counting every accepted connection in the right buckets; and
// promtool finds nothing to say about it.
func TestServeMetrics(t *testing.T) {
	testutil.RequireRoot(t)
	// on: this kernel's accept hook may be a syscall tracepoint, which
	// auto leaves off (TestServeAcceptWaitDefault)
	_, base := startServe(t, "--collect-interval", "100ms", "--stall", "300ms", "--accept-wait", "on")
	pid := strconv.Itoa(os.Getpid())

	leaky := startServer(t, true)
	leaky.connectAndLeave(t, 12)
	leaky.waitCloseWait(t, 12)
	overflow, drops := overflowListener(t)
	slow, accepted := slowAcceptor(t, 6)
	<-accepted

	ov := map[string]string{"listener": "127.0.0.1:" + strconv.Itoa(int(overflow))}
	sl := map[string]string{"listener": "127.0.0.1:" + strconv.Itoa(int(slow))}
	me := map[string]string{"pid": pid}
	var body string
	var mfs map[string]*dto.MetricFamily
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last scrape, our series (sk_drops %d):\n%s", drops, ourLines(body, pid, overflow, slow))
		}
	})
	// the collection that shows them all: the stall needs 300 ms
	testutil.WaitFor(t, 15*time.Second, "the scrape to show what the test made", func() bool {
		body, mfs = scrapeFamilies(t, base)
		h := series(mfs, "socklife_listener_accept_wait_seconds", sl)
		return value(series(mfs, "socklife_process_close_wait_sockets", me)) == 12 &&
			value(series(mfs, "socklife_listener_stalled", ov)) == 1 &&
			value(series(mfs, "socklife_listener_drops_total", ov)) == float64(drops) &&
			h != nil && h.Histogram.GetSampleCount() == 6
	})
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"socklife_process_close_wait_sockets", me, 12},
		{"socklife_listener_accept_queue_length", ov, 5},
		{"socklife_listener_accept_queue_limit", ov, 4},
		{"socklife_listener_drops_total", ov, float64(drops)},
		{"socklife_listener_accepts_total", ov, 0},
		{"socklife_listener_stalled", ov, 1},
		{"socklife_listener_accepts_total", sl, 6},
		{"socklife_listener_stalled", sl, 0},
		{"socklife_listener_accept_queue_length", sl, 0},
	} {
		if got := value(series(mfs, c.name, c.labels)); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if m := series(mfs, "socklife_process_close_wait_sockets", me); m != nil {
		for _, l := range m.Label {
			if l.GetName() == "comm" && l.GetValue() == "" {
				t.Error("our process has no comm")
			}
		}
	}
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	if got := value(series(mfs, "socklife_process_max_fds", me)); got != float64(lim.Cur) {
		t.Errorf("max fds %v, want our soft limit %d", got, lim.Cur)
	}
	// 12 leaked, 5 queued client ends and their 5 children are ours, and more
	if got := value(series(mfs, "socklife_process_open_fds", me)); got < 12+5+6 {
		t.Errorf("open fds %v, want at least the %d sockets the test holds", got, 12+5+6)
	}
	if got := value(series(mfs, "socklife_listener_stall_seconds_total", ov)); got < 0.3 {
		t.Errorf("stall seconds %v, want at least the 300ms --stall", got)
	}
	// waits from 50 ms to 300 ms: none at or under 25 ms, all within 1 s
	h := series(mfs, "socklife_listener_accept_wait_seconds", sl).Histogram
	for _, b := range h.Bucket {
		switch b.GetUpperBound() {
		case 0.025:
			if b.GetCumulativeCount() != 0 {
				t.Errorf("%d waits at most 25ms, want none: the acceptor waited 50ms before each", b.GetCumulativeCount())
			}
		case 1:
			if b.GetCumulativeCount() != 6 {
				t.Errorf("%d waits at most 1s, want all 6", b.GetCumulativeCount())
			}
		}
	}
	if h.GetSampleSum() < 6*0.05 {
		t.Errorf("wait sum %vs, want at least 6 x 50ms", h.GetSampleSum())
	}
	// The leaked ones' clients close locally once their FIN is acked;
	// one whose ACK came while close() still held its lock waits in
	// FIN_WAIT2 for tcp_fin_timeout (60s) first: those still there before
	// a last scrape do not count yet.
	finWait2 := 0
	res, err := snapshot.Dump(context.Background(), snapshot.Options{TCP: true, IPv4: true, States: tcpstate.Of(tcpstate.FinWait2)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Sockets {
		if s.Remote.Port() == uint16(leaky.port) {
			finWait2++
		}
	}
	local := map[string]string{"closed_by": "local"}
	// a collection after the dump (the cached one may predate it)
	testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("%d local closes of the leaked ones' clients", 12-finWait2), func() bool {
		body, mfs = scrapeFamilies(t, base)
		return value(series(mfs, "socklife_tcp_connections_closed_total", local)) >= float64(12-finWait2)
	})
	// the namespace is the host's, shared with whatever else runs: at
	// least what the test made
	for _, c := range []struct {
		name   string
		labels map[string]string
		least  float64
	}{
		{"socklife_tcp_sockets", map[string]string{"state": "CLOSE_WAIT"}, 12},
		{"socklife_tcp_connections_opened_total", map[string]string{"role": "client"}, 12 + 5 + 3 + 6},
		{"socklife_tcp_connections_opened_total", map[string]string{"role": "server"}, 12 + 5 + 6},
		{"socklife_tcp_connections_closed_total", local, float64(12 - finWait2)}, // the leaked ones' clients
		{"socklife_tcp_connect_failures_total", nil, 3},                          // the SYNs given up
		{"socklife_tcpext_listen_overflows_total", nil, 3},
	} {
		if got := value(series(mfs, c.name, c.labels)); got < c.least {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, got, c.least)
		}
	}
	// last: without promtool (outside CI) the values above are still checked
	check := exec.Command(testutil.ServerBinary(t, "promtool"), "check", "metrics")
	check.Stdin = strings.NewReader(body)
	if out, err := check.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// Sockets already in CLOSE_WAIT when serve starts never enter it where
// the kernel counts: serve takes them from its start-up snapshot, owner
// and all, and drops each once a dump no longer finds it there.
func TestServeCloseWaitOlderThanServe(t *testing.T) {
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	var servers []*net.TCPConn
	for range 7 {
		cl, sv := testutil.Pair(t, ln)
		servers = append(servers, sv)
		cl.Close()
		// EOF: the client's FIN is in, the server's end in CLOSE_WAIT
		if _, err := sv.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("reading the closed client: %v, want EOF", err)
		}
	}
	_, base := startServe(t, "--collect-interval", "100ms")
	me := map[string]string{"pid": strconv.Itoa(os.Getpid())}
	closeWaits := func(want float64) func() bool {
		return func() bool {
			_, mfs := scrapeFamilies(t, base)
			return value(series(mfs, "socklife_process_close_wait_sockets", me)) == want
		}
	}
	testutil.WaitFor(t, 10*time.Second, "our 7 older CLOSE_WAIT sockets", closeWaits(7))
	for _, sv := range servers[:4] {
		sv.Close()
	}
	testutil.WaitFor(t, 10*time.Second, "3 left once we close 4", closeWaits(3))
	for _, sv := range servers[4:] {
		sv.Close()
	}
	testutil.WaitFor(t, 10*time.Second, "none left", closeWaits(0))
}

// A connection older than serve that enters CLOSE_WAIT later does so in
// softirq, where no task is current: its owner is the one serve's start-up
// snapshot found and seeded (holders.Brief: the sockets it keeps no
// further), so the process still gets its series.
func TestServeCloseWaitOwnerOfOlderConnection(t *testing.T) {
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	var clients []*net.TCPConn
	var servers []*net.TCPConn
	for range 5 {
		cl, sv := testutil.Pair(t, ln)
		clients, servers = append(clients, cl), append(servers, sv)
	}
	_, base := startServe(t, "--collect-interval", "100ms")
	me := map[string]string{"pid": strconv.Itoa(os.Getpid())}
	for i, cl := range clients {
		cl.Close()
		if _, err := servers[i].Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("reading the closed client: %v, want EOF", err)
		}
	}
	testutil.WaitFor(t, 10*time.Second, "our 5 connections in CLOSE_WAIT, named by the seeded owner", func() bool {
		_, mfs := scrapeFamilies(t, base)
		return value(series(mfs, "socklife_process_close_wait_sockets", me)) == 5
	})
}

// --accept-wait auto measures accepts where a hook costs per accept()
// (fexit, kretprobe: the kernel matrix) and leaves them out where the only
// hook is a syscall tracepoint (this development machine): hook_info says
// "off" and the accept series are absent, while the queue is still there.
// What the kernel offers comes from info, which tries the whole ladder.
func TestServeAcceptWaitDefault(t *testing.T) {
	testutil.RequireRoot(t)
	// what the kernel offers under the matrix run's disabled hooks, which
	// serve (startSocklife) gets too
	out, stderr, code := runCLI(t, append([]string{"info", "-o", "json"}, disableHookArgs()...)...)
	if code != 0 {
		t.Fatalf("info: exit %d: %s", code, stderr)
	}
	var info kernelInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	var best featureInfo
	for _, f := range info.Features {
		if f.Feature == string(tracer.FeatureAccept) {
			best = f
		}
	}
	perCall := best.Hook != "none" && !strings.HasPrefix(best.Target, "syscalls:")
	_, base := startServe(t, "--collect-interval", "100ms")
	slow, accepted := slowAcceptor(t, 2)
	<-accepted
	sl := map[string]string{"listener": "127.0.0.1:" + strconv.Itoa(int(slow))}
	var mfs map[string]*dto.MetricFamily
	testutil.WaitFor(t, 15*time.Second, "the scrape to show the listener", func() bool {
		_, mfs = scrapeFamilies(t, base)
		return series(mfs, "socklife_listener_accept_queue_limit", sl) != nil
	})
	want := "off"
	if perCall {
		want = best.Hook
		testutil.WaitFor(t, 15*time.Second, "the two accepts", func() bool {
			_, mfs = scrapeFamilies(t, base)
			return value(series(mfs, "socklife_listener_accepts_total", sl)) == 2
		})
	} else if m := series(mfs, "socklife_listener_accepts_total", sl); m != nil {
		t.Errorf("accepts exported (%v) with the accept hook left out", value(m))
	}
	if series(mfs, "socklife_hook_info", map[string]string{"feature": "accept", "hook": want}) == nil {
		t.Errorf("no socklife_hook_info{feature=accept,hook=%s}: best hook here %s on %s", want, best.Hook, best.Target)
	}
}

// Ten scrapes at once cost one collection: socklife_scrape_collection_seconds
// is the same in all (one collection's), and a later one has another.
func TestServeConcurrentScrapesShareACollection(t *testing.T) {
	testutil.RequireRoot(t)
	_, base := startServe(t, "--collect-interval", "1h")
	first, _ := scrapeFamilies(t, base)
	bodies := make(chan string, 10)
	for range 10 {
		go func() {
			b, err := httpGet(base + "/metrics")
			if err != nil {
				t.Error(err)
			}
			bodies <- collectionLine(b)
		}()
	}
	for range 10 {
		if got := <-bodies; got != collectionLine(first) {
			t.Errorf("a concurrent scrape saw %q, the first %q: a second collection", got, collectionLine(first))
		}
	}
}

func collectionLine(body string) string {
	for l := range strings.Lines(body) {
		if strings.HasPrefix(l, "socklife_scrape_collection_seconds ") {
			return l
		}
	}
	return ""
}

// Without flags serve listens on 127.0.0.1:9931 only, / names socklife and
// links /metrics, and SIGTERM stops it with status 0.
func TestServeDefaultsToLoopback(t *testing.T) {
	testutil.RequireRoot(t)
	run := startSocklife(t, nil, "serve")
	base := "http://" + defaultListenAddress
	var page string
	testutil.WaitFor(t, 10*time.Second, "serve to answer on "+defaultListenAddress, func() bool {
		var err error
		page, err = httpGet(base + "/")
		return err == nil
	})
	if !strings.Contains(page, "socklife") || !strings.Contains(page, `href="/metrics"`) {
		t.Errorf("landing page does not name socklife and link /metrics:\n%s", page)
	}
	res, err := snapshot.Dump(context.Background(), snapshot.Options{TCP: true, States: tcpstate.Of(tcpstate.Listen)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.AttachProcesses(res.Sockets); err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, s := range res.Sockets {
		for _, p := range s.Processes {
			if int(p.PID) == run.cmd.Process.Pid {
				ours = append(ours, s.Local.String())
			}
		}
	}
	if len(ours) != 1 || ours[0] != defaultListenAddress {
		t.Errorf("serve listens on %v, want only %s", ours, defaultListenAddress)
	}
	run.stop(t)
}

// A real Prometheus scrapes serve every second and answers a PromQL query
// for the CLOSE_WAIT sockets of our process: the exposition is what
// Prometheus takes, not only what the parser here does.
func TestServePrometheusScrapes(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.ServerBinary(t, "prometheus")
	_, base := startServe(t, "--collect-interval", "100ms")
	leaky := startServer(t, true)
	leaky.connectAndLeave(t, 12)
	leaky.waitCloseWait(t, 12)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	target := strings.TrimPrefix(base, "http://")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: socklife\n    static_configs:\n      - targets: ['"+target+"']\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := "127.0.0.1:" + strconv.Itoa(int(testutil.FreePort(t)))
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := testutil.StopAtEnd(t, cmd, nil)

	query := `socklife_process_close_wait_sockets{pid="` + strconv.Itoa(os.Getpid()) + `"}`
	var got string
	testutil.WaitFor(t, 60*time.Second, "Prometheus to answer "+query, func() bool {
		select {
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", log.String())
		default:
		}
		body, err := httpGet("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(query))
		if err != nil {
			return false
		}
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Metric map[string]string
					Value  [2]any
				}
			}
		}
		if json.Unmarshal([]byte(body), &r) != nil || len(r.Data.Result) != 1 {
			return false
		}
		got = fmt.Sprint(r.Data.Result[0].Value[1])
		return r.Data.Result[0].Metric["job"] == "socklife" && got == "12"
	})
}

// ourLines are the lines of a scrape about the test's pid and listeners.
func ourLines(body, pid string, ports ...uint16) string {
	var b strings.Builder
	for l := range strings.Lines(body) {
		mine := strings.Contains(l, `pid="`+pid+`"`)
		for _, p := range ports {
			mine = mine || strings.Contains(l, ":"+strconv.Itoa(int(p))+`"`) && !strings.Contains(l, "_bucket")
		}
		if mine {
			b.WriteString(l)
		}
	}
	return b.String()
}
