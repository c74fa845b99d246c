package render

// ss_test.go: rendering checked against the real ss (iproute2) on real
// sockets, where ss shows the same thing.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/backlog"
	"github.com/socklife/socklife/internal/closewait"
	"github.com/socklife/socklife/internal/live"
	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
	"github.com/socklife/socklife/internal/topview"
	"github.com/socklife/socklife/snapshot"
	"github.com/socklife/socklife/tracer"
)

// runSS runs iproute2's ss with args (no shell), skipping the test where
// there is none.
func runSS(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("ss")
	if err != nil {
		t.Skip("no ss (iproute2) here")
	}
	out, err := exec.Command(path, args...).Output()
	if err != nil {
		t.Fatalf("ss %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// ownedBy dumps the listening sockets (TCP and Unix) of pid, owners attached.
func ownedBy(t *testing.T, pid int) []snapshot.Socket {
	t.Helper()
	res, err := snapshot.Dump(context.Background(), snapshot.Options{
		TCP: true, Unix: true, IPv4: true, IPv6: true, States: tcpstate.Of(tcpstate.Listen)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.AttachProcesses(res.Sockets); err != nil {
		t.Fatal(err)
	}
	var out []snapshot.Socket
	for _, s := range res.Sockets {
		for _, p := range s.Processes {
			if p.PID == int32(pid) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// noForgedRow fails if a line of out begins with text from the name after
// its newline, or if the newline came through raw.
func noForgedRow(t *testing.T, what, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "FORGED") {
			t.Errorf("%s: a process name forged a row %q:\n%s", what, line, out)
		}
	}
	if !strings.Contains(out, `ok\nFORGED`) {
		t.Errorf("%s: the name is not shown escaped as ok\\nFORGED:\n%s", what, out)
	}
}

// A process renames itself "ok\nFORGED 0.0.0.0" (prctl PR_SET_NAME keeps
// 15 bytes) and listens: ss -p prints the newline raw and the row breaks in
// two; no table of socklife's may.
func TestForgedNameEscapedInEveryTable(t *testing.T) {
	testutil.RequireRoot(t)
	r := testutil.StartRenamed(t, "ok\nFORGED 0.0.0.0")
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(r.PID) + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSuffix(string(comm), "\n")
	if name != "ok\nFORGED 0.0.0" {
		t.Fatalf("comm is %q", name)
	}

	// ss shows the forged row: this is what socklife must not do.
	ssOut := runSS(t, "-tlpn", "sport = :"+strconv.Itoa(int(r.Port)))
	if !strings.Contains(ssOut, "\nFORGED 0.0.0\"") {
		t.Logf("ss no longer prints the newline raw:\n%s", ssOut)
	}

	socks := ownedBy(t, r.PID)
	if len(socks) != 2 {
		t.Fatalf("want the helper's TCP and Unix listeners, got %d sockets", len(socks))
	}
	var b bytes.Buffer
	if err := WriteSockets(&b, socks, TableOptions{Processes: true}, &Names{}); err != nil {
		t.Fatal(err)
	}
	noForgedRow(t, "snapshot", b.String())

	// top: the listener section and the CLOSE_WAIT section.
	table := live.NewTable(nil)
	table.Load(socks[:1], time.Now())
	f := topview.NewSampler(time.Minute, closewait.ByProcess).Sample(topview.Input{At: time.Now(), Table: table, Listening: socks[:1]})
	b.Reset()
	if err := WriteTop(&b, &f, View{}); err != nil {
		t.Fatal(err)
	}
	noForgedRow(t, "top", b.String())
	b.Reset()
	if err := WriteCloseWait(&b, []closewait.Process{{PID: uint32(r.PID), Comm: name, Count: 1}}); err != nil {
		t.Fatal(err)
	}
	noForgedRow(t, "closewait", b.String())

	// backlog: the table and a stall line.
	lr := backlog.ListenerReport{Local: socks[0].Local, PID: uint32(r.PID), Comm: name}
	st := backlog.StallEvent{Time: time.Now(), Local: socks[0].Local, PID: uint32(r.PID), Comm: name,
		Holders: []tracer.Holder{{PID: uint32(r.PID), Comm: name}}}
	b.Reset()
	if err := (&Backlog{Out: &b}).Write(&backlog.Report{End: time.Now(), Listeners: []backlog.ListenerReport{lr}, Stalls: []backlog.StallEvent{st}}); err != nil {
		t.Fatal(err)
	}
	noForgedRow(t, "backlog", b.String())

	// trace
	ev := tracer.Event{Time: time.Now(), Kind: tracer.StateChange, OwnerSource: tracer.OwnerTask,
		Owner: tracer.Task{PID: uint32(r.PID), Comm: name}, Local: socks[0].Local, Old: tcpstate.Listen, New: tcpstate.Close}
	noForgedRow(t, "trace", TraceHeader+string(AppendTrace(nil, &ev, nil)))
}

// An abstract Unix name holding a NUL: ss -x prints every NUL of an
// abstract name as "@", the leading one and those inside; so does the table.
func TestAbstractNULAsSS(t *testing.T) {
	testutil.RequireRoot(t)
	r := testutil.StartRenamed(t, "abstractnul")
	want := strings.ReplaceAll(r.Abstract, "\x00", "@")
	ssOut := runSS(t, "-xlpn")
	var ssLine string
	for _, line := range strings.Split(ssOut, "\n") {
		if strings.Contains(line, "pid="+strconv.Itoa(r.PID)+",") {
			ssLine = line
		}
	}
	if !strings.Contains(ssLine, " "+want+" ") {
		t.Fatalf("ss -xl does not show %q as expected:\n%s", want, ssOut)
	}
	ssFields := strings.Fields(ssLine)

	var unixSock []snapshot.Socket
	for _, s := range ownedBy(t, r.PID) {
		if s.Protocol == snapshot.Unix {
			unixSock = append(unixSock, s)
		}
	}
	if len(unixSock) != 1 || unixSock[0].Path != "@socklife\x00"+strconv.Itoa(r.PID) {
		t.Fatalf("want the helper's abstract listener, got %+v", unixSock)
	}
	var b bytes.Buffer
	if err := WriteSockets(&b, unixSock, TableOptions{Processes: true}, &Names{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	got := strings.Fields(lines[len(lines)-1])
	// ss: Netid State Recv-Q Send-Q Local Port Peer Port Process; ours the same.
	if len(got) < 8 || len(ssFields) < 8 || strings.Join(got[:8], " ") != strings.Join(ssFields[:8], " ") {
		t.Errorf("socklife row %q, ss row %q", got, ssFields)
	}
}

// listen6 listens on [::]:0 (TCP) or binds it (UDP) with IPV6_V6ONLY set
// as asked, and returns the port.
func listen6(t *testing.T, typ int, v6only bool) uint16 {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET6, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	on := 0
	if v6only {
		on = 1
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, on); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet6{}); err != nil {
		t.Fatal(err)
	}
	if typ == unix.SOCK_STREAM {
		if err := unix.Listen(fd, 8); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(sa.(*unix.SockaddrInet6).Port)
}

// ssLocal returns ss -n's Local Address:Port column for the one socket
// of netid (tcp, udp) with this local port.
func ssLocal(t *testing.T, flag string, port uint16) string {
	t.Helper()
	out := runSS(t, "-Hn"+flag, "sport", "=", ":"+strconv.Itoa(int(port)))
	f := strings.Fields(out)
	if len(f) < 4 {
		t.Fatalf("ss -Hn%s sport = :%d: %q", flag, port, out)
	}
	return f[3] // State Recv-Q Send-Q Local Peer
}

// A [::] listener with IPV6_V6ONLY off takes IPv4 too: ss prints it *:P,
// an IPv6-only one [::]:P; the JSON says v6only, --exposed which IP
// versions reach it.
func TestDualStackAsSS(t *testing.T) {
	testutil.RequireRoot(t)
	type sockCase struct {
		proto  snapshot.Protocol
		typ    int
		flag   string
		v6only bool
		port   uint16
	}
	cases := []*sockCase{
		{proto: snapshot.TCP, typ: unix.SOCK_STREAM, flag: "tl", v6only: false},
		{proto: snapshot.TCP, typ: unix.SOCK_STREAM, flag: "tl", v6only: true},
		{proto: snapshot.UDP, typ: unix.SOCK_DGRAM, flag: "ul", v6only: false},
		{proto: snapshot.UDP, typ: unix.SOCK_DGRAM, flag: "ul", v6only: true},
	}
	for _, c := range cases {
		c.port = listen6(t, c.typ, c.v6only)
	}
	res, err := snapshot.Dump(context.Background(), snapshot.Options{TCP: true, UDP: true, IPv6: true,
		States: tcpstate.Of(tcpstate.Listen, tcpstate.Close)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		var s *snapshot.Socket
		for i := range res.Sockets {
			if res.Sockets[i].Protocol == c.proto && res.Sockets[i].Local.Port() == c.port {
				s = &res.Sockets[i]
			}
		}
		if s == nil {
			t.Fatalf("%s port %d not in the dump", c.proto, c.port)
		}
		if s.V6Only != c.v6only {
			t.Errorf("%s port %d: V6Only %v, want %v (INET_DIAG_SKV6ONLY)", c.proto, c.port, s.V6Only, c.v6only)
		}
		var b bytes.Buffer
		if err := WriteSockets(&b, []snapshot.Socket{*s}, TableOptions{}, &Names{}); err != nil {
			t.Fatal(err)
		}
		row := strings.Fields(strings.Split(b.String(), "\n")[1])
		want := ssLocal(t, c.flag, c.port)
		if row[4] != want {
			t.Errorf("%s v6only=%v: Local %q, ss prints %q", c.proto, c.v6only, row[4], want)
		}
		j := SocketToJSON(s, false, &Names{})
		if j.V6Only == nil || *j.V6Only != c.v6only {
			t.Errorf("%s v6only=%v: JSON v6only %v", c.proto, c.v6only, j.V6Only)
		}
		exp := snapshot.Exposed([]snapshot.Socket{*s}, nil)
		wantIP := "IPv6"
		if !c.v6only {
			wantIP = "IPv4 and IPv6"
		}
		if len(exp) != 1 || ExposureToJSON(&exp[0], false, &Names{}).IP != wantIP {
			t.Errorf("%s v6only=%v: exposed %+v, want IP %q", c.proto, c.v6only, exp, wantIP)
		}
		b.Reset()
		if err := WriteExposedTable(&b, exp, TableOptions{}, &Names{}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want+"  ") || !strings.Contains(b.String(), wantIP) {
			t.Errorf("%s v6only=%v: exposed table\n%s\nwant %s and %s", c.proto, c.v6only, b.String(), want, wantIP)
		}
	}
}

// ssField returns the value ss prints after key (as in "retrans:0/1" or
// "skmem:(...)") on the line of out that holds pick, "" if none.
func ssField(out string, pick func(fields []string) bool, key string) string {
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		if !pick(strings.Fields(line)) {
			continue
		}
		// ss -i/-m put the details on the next line, indented.
		text := line
		if i+1 < len(lines) {
			text += " " + lines[i+1]
		}
		for _, f := range strings.Fields(text) {
			if v, ok := strings.CutPrefix(f, key); ok {
				return v
			}
		}
	}
	return ""
}

// Unix sockets have skmem in ss -xm: the JSON "memory" has the same numbers.
func TestUnixMemoryAsSS(t *testing.T) {
	testutil.RequireRoot(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if _, err := unix.Write(fds[0], make([]byte, 300)); err != nil { // queued, unread
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fds[0], &st); err != nil {
		t.Fatal(err)
	}
	res, err := snapshot.Dump(context.Background(), snapshot.Options{Unix: true, States: tcpstate.All, Info: true})
	if err != nil {
		t.Fatal(err)
	}
	var s *snapshot.Socket
	for i := range res.Sockets {
		if res.Sockets[i].Inode == st.Ino {
			s = &res.Sockets[i]
		}
	}
	if s == nil || s.MemInfo == nil {
		t.Fatalf("socket %d: not dumped or no memory: %+v", st.Ino, s)
	}
	m := SocketToJSON(s, false, &Names{}).Memory
	got := fmt.Sprintf("(r%d,rb%d,t%d,tb%d,f%d,w%d,o%d,bl%d,d%d)",
		m.RmemAlloc, m.RcvBuf, m.WmemAlloc, m.SndBuf, m.FwdAlloc, m.WmemQueued, m.OptMem, m.Backlog, m.Drops)
	// Netid State Recv-Q Send-Q Local Inode Peer Inode: ours is the first inode
	ino := strconv.FormatUint(st.Ino, 10)
	want := ssField(runSS(t, "-xmna"), func(f []string) bool { return len(f) > 5 && f[5] == ino }, "skmem:")
	if got != want || m.WmemAlloc == 0 {
		t.Errorf("memory %s, ss -xm skmem:%s", got, want)
	}
}

// ss -i's retrans:X/Y is tcpi_retrans (retransmitted segments not
// acknowledged yet) over tcpi_total_retrans. A SYN to a listener whose
// accept queue is full is dropped and sent again a second later: the
// connecting socket then has retrans 1/1.
func TestRetransAsSS(t *testing.T) {
	testutil.RequireRoot(t)
	_, port := testutil.RawListener(t, [4]byte{127, 0, 0, 1}, 0, 0)
	connect := func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		err = unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: int(port)})
		if err != nil && err != unix.EINPROGRESS {
			t.Fatal(err)
		}
	}
	connect() // fills the queue (backlog 0 holds one)
	time.Sleep(50 * time.Millisecond)
	connect() // its SYN is dropped
	synSent := func() *snapshot.Socket {
		res, err := snapshot.Dump(context.Background(), snapshot.Options{TCP: true, IPv4: true,
			States: tcpstate.Of(tcpstate.SynSent), Info: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := range res.Sockets {
			if s := &res.Sockets[i]; s.Remote.Port() == port && s.TCPInfo != nil {
				return s
			}
		}
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := synSent()
		if s != nil && s.TCPInfo.TotalRetrans > 0 {
			ssOut := runSS(t, "-tni", "state", "syn-sent", "dport", "=", ":"+strconv.Itoa(int(port)))
			again := synSent()
			if again == nil || again.TCPInfo.Retrans != s.TCPInfo.Retrans || again.TCPInfo.TotalRetrans != s.TCPInfo.TotalRetrans {
				continue // moved on while ss ran
			}
			var b bytes.Buffer
			if err := WriteSockets(&b, []snapshot.Socket{*s}, TableOptions{Info: true}, &Names{}); err != nil {
				t.Fatal(err)
			}
			row := strings.Fields(strings.Split(b.String(), "\n")[1])
			peer := "127.0.0.1:" + strconv.Itoa(int(port))
			// a state filter drops the State column: the peer is the fourth
			want := ssField(ssOut, func(f []string) bool { return len(f) > 3 && f[3] == peer }, "retrans:")
			if row[7] != want || s.TCPInfo.Retrans == 0 {
				t.Errorf("Retrans column %q (tcpi_retrans %d), ss -i retrans:%s\n%s", row[7], s.TCPInfo.Retrans, want, ssOut)
			}
			if j := SocketToJSON(s, false, &Names{}).TCPInfo; j.Retrans != s.TCPInfo.Retrans || j.TotalRetrans != s.TCPInfo.TotalRetrans {
				t.Errorf("JSON retrans %d/%d", j.Retrans, j.TotalRetrans)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SYN retransmit seen: %+v", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A socket bound to a device in another namespace: its index names a device
// of that namespace (v0 is 3 in a new namespace with one veth pair; 3 is
// something else, or nothing, here). The table names it as ss run inside
// the namespace does, and --exposed names the address's interface.
func TestInterfaceInSocketsNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("no ip (iproute2) to make a veth pair")
	}
	path := testutil.NamedNetns(t)
	name := path[strings.LastIndexByte(path, '/')+1:]
	for _, args := range [][]string{
		{"-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"-n", name, "addr", "add", "10.123.0.1/24", "dev", "v0"},
		{"-n", name, "link", "set", "v0", "up"},
	} {
		if out, err := exec.Command(ipPath, args...).CombinedOutput(); err != nil {
			t.Skipf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	var port uint16
	testutil.InNetns(t, path, func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "v0"); err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{10, 123, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(fd, 8); err != nil {
			t.Fatal(err)
		}
		sa, _ := unix.Getsockname(fd)
		port = uint16(sa.(*unix.SockaddrInet4).Port)
	})
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	res, err := snapshot.Dump(context.Background(), snapshot.Options{TCP: true, IPv4: true,
		States: tcpstate.Of(tcpstate.Listen), Netns: []uint32{uint32(st.Ino)}})
	if err != nil {
		t.Fatal(err)
	}
	var s *snapshot.Socket
	for i := range res.Sockets {
		if res.Sockets[i].Netns == uint32(st.Ino) && res.Sockets[i].Local.Port() == port {
			s = &res.Sockets[i]
		}
	}
	if s == nil {
		t.Fatal("listener not dumped")
	}
	var b bytes.Buffer
	names := &Names{}
	if err := WriteSockets(&b, []snapshot.Socket{*s}, TableOptions{Netns: true}, names); err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(strings.Split(b.String(), "\n")[1])[4]
	out, err := exec.Command(ipPath, "netns", "exec", name, "ss", "-Htln", "sport", "=", ":"+strconv.Itoa(int(port))).Output()
	if err != nil {
		t.Fatal(err)
	}
	ssF := strings.Fields(string(out))
	if len(ssF) < 4 || got != ssF[3] || got != "10.123.0.1%v0:"+strconv.Itoa(int(port)) {
		t.Errorf("Local %q, ss in the namespace: %q", got, out)
	}
	if j := SocketToJSON(s, false, names); j.Interface != "v0" {
		t.Errorf("JSON interface %q, want v0", j.Interface)
	}
	self, err := snapshot.CurrentNetns()
	if err != nil {
		t.Fatal(err)
	}
	exp := snapshot.Exposed([]snapshot.Socket{*s}, snapshot.InterfaceOfAddr(self))
	if len(exp) != 1 || exp[0].Interface != "v0" {
		t.Fatalf("exposed %+v, want the listener on v0", exp)
	}
	b.Reset()
	if err := WriteExposedTable(&b, exp, TableOptions{Netns: true}, names); err != nil {
		t.Fatal(err)
	}
	if row := strings.Fields(strings.Split(b.String(), "\n")[1]); row[4] != "v0" {
		t.Errorf("exposed row %q, want interface v0", row)
	}
}
