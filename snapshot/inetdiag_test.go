package snapshot

import (
	"encoding/binary"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/internal/testutil"
)

// Raw-fd socket helpers: the tests need exact control of backlog, close
// order and ownership, which the net package hides.

func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

func familyOf(ap netip.AddrPort) int {
	if ap.Addr().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func newSock(tb testing.TB, family, typ int) int {
	tb.Helper()
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	return fd
}

func bindFD(tb testing.TB, fd int, addr string) {
	tb.Helper()
	if err := unix.Bind(fd, sockaddrOf(netip.AddrPortFrom(netip.MustParseAddr(addr), 0))); err != nil {
		tb.Fatalf("binding to %s: %v", addr, err)
	}
}

// listenTCP listens on addr, port chosen by the kernel, with the given backlog.
func listenTCP(tb testing.TB, family int, addr string, backlog int) (fd int, inode uint64) {
	tb.Helper()
	fd = newSock(tb, family, unix.SOCK_STREAM)
	return listenOn(tb, fd, addr, backlog), fdInode(tb, fd)
}

func listenOn(tb testing.TB, fd int, addr string, backlog int) int {
	tb.Helper()
	bindFD(tb, fd, addr)
	if err := unix.Listen(fd, backlog); err != nil {
		tb.Fatal(err)
	}
	return fd
}

// dialTCP connects with a blocking connect, which on loopback returns once
// the handshake is done.
func dialTCP(tb testing.TB, to netip.AddrPort) int {
	tb.Helper()
	fd := newSock(tb, familyOf(to), unix.SOCK_STREAM)
	if err := unix.Connect(fd, sockaddrOf(to)); err != nil {
		tb.Fatalf("connecting to %v: %v", to, err)
	}
	return fd
}

func acceptFD(tb testing.TB, ln int) int {
	tb.Helper()
	fd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(fd) })
	return fd
}

// tcpPair makes an established connection to the listener ln: client and
// server fds.
func tcpPair(tb testing.TB, ln int) (client, server int) {
	tb.Helper()
	local, _ := sockEnds(tb, ln)
	if local.Addr().IsUnspecified() {
		local = netip.AddrPortFrom(netip.MustParseAddr("::1"), local.Port())
		if ln4, _ := unix.Getsockname(ln); familyOfSockaddr(ln4) == unix.AF_INET {
			local = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), local.Port())
		}
	}
	client = dialTCP(tb, local)
	return client, acceptFD(tb, ln)
}

func familyOfSockaddr(sa unix.Sockaddr) int {
	if _, ok := sa.(*unix.SockaddrInet4); ok {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// wantInet checks the fields every inet socket must carry.
func wantInet(t *testing.T, name string, s Socket, fd int, state tcpstate.State, uid uint32) {
	t.Helper()
	local, remote := sockEnds(t, fd)
	if s.State != state || s.Local != local || s.Remote != remote {
		t.Errorf("%s: got %v %v -> %v, want %v %v -> %v", name, s.State, s.Local, s.Remote, state, local, remote)
	}
	if want := fdInode(t, fd); s.Inode != want {
		t.Errorf("%s: inode %d, want %d (fstat)", name, s.Inode, want)
	}
	if want := uint8(familyOf(local)); s.Family != want {
		t.Errorf("%s: family %d, want %d", name, s.Family, want)
	}
	if s.UID != uid || s.Netns != selfNetns(t) || s.Cookie == 0 {
		t.Errorf("%s: uid %d netns %d cookie %d, want uid %d netns %d and a cookie", name, s.UID, s.Netns, s.Cookie, uid, selfNetns(t))
	}
}

func TestDumpTCPListeners(t *testing.T) {
	testutil.RequireRoot(t)
	ln4 := listenOn(t, socketAs(t, 4242, unix.AF_INET, unix.SOCK_STREAM), "127.0.0.1", 7)
	ln6, _ := listenTCP(t, unix.AF_INET6, "::", 9)
	for _, tt := range []struct {
		name    string
		fd      int
		backlog uint32
		uid     uint32
	}{{"127.0.0.1 listener", ln4, 7, 4242}, {"[::] listener", ln6, 9, 0}} {
		local, remote := sockEnds(t, tt.fd)
		s := waitForSocket(t, Options{TCP: true}, tt.name, tuple(TCP, local, remote))
		wantInet(t, tt.name, s, tt.fd, tcpstate.Listen, tt.uid)
		if s.RecvQ != 0 || s.SendQ != tt.backlog {
			t.Errorf("%s: Recv-Q %d Send-Q %d, want 0 and the backlog %d", tt.name, s.RecvQ, s.SendQ, tt.backlog)
		}
	}
}

// TestDumpTCPLifecycle covers the states an SRE hunts for: ESTAB (with its
// tcp_info), CLOSE-WAIT (the peer closed, we did not) and TIME-WAIT (the side
// that closed first, once the other closed too), over IPv4, IPv6 and
// v4-mapped IPv6.
func TestDumpTCPLifecycle(t *testing.T) {
	testutil.RequireRoot(t)
	ln4, _ := listenTCP(t, unix.AF_INET, "127.0.0.1", 16)
	ln6, _ := listenTCP(t, unix.AF_INET6, "::", 16)
	opts := Options{TCP: true, Info: true}

	// ESTAB over IPv6, with data both ways.
	c6, s6 := tcpPair(t, ln6)
	const sent = 1000
	if _, err := unix.Write(c6, make([]byte, sent)); err != nil {
		t.Fatal(err)
	}
	cl, cr := sockEnds(t, c6)
	est := waitForSocket(t, opts, "the client's 1000 bytes acked", func(s *Socket) bool {
		return tuple(TCP, cl, cr)(s) && s.TCPInfo != nil && s.TCPInfo.BytesAcked > sent
	})
	wantInet(t, "ESTAB client", est, c6, tcpstate.Established, 0)
	if ti := est.TCPInfo; ti.BytesSent != sent || ti.BytesAcked != sent+1 || ti.RTT <= 0 || ti.SndCwnd == 0 || ti.SndMSS == 0 {
		t.Errorf("ESTAB client tcp_info: %+v, want %d bytes sent, %d acked (data and SYN), an RTT, a cwnd and an MSS", *ti, sent, sent+1)
	}
	if est.MemInfo == nil || est.Congestion == "" {
		t.Errorf("ESTAB client with Info: meminfo %v congestion %q, want both", est.MemInfo, est.Congestion)
	}
	sl, sr := sockEnds(t, s6)
	srv := waitForSocket(t, opts, "the server side", tuple(TCP, sl, sr))
	wantInet(t, "ESTAB server", srv, s6, tcpstate.Established, 0)
	if srv.RecvQ != sent || srv.TCPInfo == nil || srv.TCPInfo.BytesReceived != sent {
		t.Errorf("ESTAB server: Recv-Q %d tcp_info %+v, want %d unread and received bytes", srv.RecvQ, srv.TCPInfo, sent)
	}

	// CLOSE-WAIT over v4-mapped IPv6: the client (IPv4) closes, the server
	// (an IPv6 socket on [::]) does not.
	mappedClient := dialTCP(t, netip.MustParseAddrPort("127.0.0.1:"+portOf(t, ln6)))
	mappedServer := acceptFD(t, ln6)
	ml, mr := sockEnds(t, mappedServer)
	if !ml.Addr().Is4In6() {
		t.Fatalf("accepted IPv4 client on [::] has local address %v, want v4-mapped", ml)
	}
	unix.Close(mappedClient)
	cw := waitForSocket(t, opts, "CLOSE-WAIT", func(s *Socket) bool {
		return tuple(TCP, ml, mr)(s) && s.State == tcpstate.CloseWait
	})
	wantInet(t, "CLOSE-WAIT server", cw, mappedServer, tcpstate.CloseWait, 0)

	// TIME-WAIT over IPv4: the client closes first, then the server.
	tc, ts := tcpPair(t, ln4)
	tl, tr := sockEnds(t, tc)
	unix.Close(tc)
	waitForSocket(t, opts, "FIN-WAIT-2", func(s *Socket) bool { return tuple(TCP, tl, tr)(s) && s.State == tcpstate.FinWait2 })
	unix.Close(ts)
	tw := waitForSocket(t, opts, "TIME-WAIT", func(s *Socket) bool { return tuple(TCP, tl, tr)(s) && s.State == tcpstate.TimeWait })
	if tw.Inode != 0 || tw.Family != unix.AF_INET || tw.Timer == nil || tw.Timer.Kind != TimerTimeWait || tw.Timer.Expires <= 0 {
		t.Errorf("TIME-WAIT: inode %d family %d timer %+v, want inode 0, AF_INET and a TIME-WAIT timer", tw.Inode, tw.Family, tw.Timer)
	}
}

func portOf(t *testing.T, fd int) string {
	t.Helper()
	local, _ := sockEnds(t, fd)
	return strconv.Itoa(int(local.Port()))
}

// TestDumpTCPFullAcceptQueue is the backlog-stall case: a listener with
// backlog N whose owner never calls accept() holds N+1 connections, and ss
// shows Recv-Q N+1 over Send-Q N.
func TestDumpTCPFullAcceptQueue(t *testing.T) {
	testutil.RequireRoot(t)
	const backlog = 3
	ln, _ := listenTCP(t, unix.AF_INET, "127.0.0.1", backlog)
	local, remote := sockEnds(t, ln)
	for range backlog + 1 {
		dialTCP(t, local)
	}
	s := waitForSocket(t, Options{TCP: true, IPv4: true, States: tcpstate.Of(tcpstate.Listen)},
		"a full accept queue", func(s *Socket) bool { return tuple(TCP, local, remote)(s) && s.RecvQ == backlog+1 })
	if s.SendQ != backlog {
		t.Errorf("full listener: Recv-Q %d Send-Q %d, want %d and %d", s.RecvQ, s.SendQ, backlog+1, backlog)
	}
}

func TestDumpUDP(t *testing.T) {
	testutil.RequireRoot(t)
	// A bound, unconnected IPv4 socket owned by uid 4243, with one unread datagram.
	unconn := socketAs(t, 4243, unix.AF_INET, unix.SOCK_DGRAM)
	bindFD(t, unconn, "127.0.0.1")
	// A connected IPv6 socket, which sends it nothing.
	conn := newSock(t, unix.AF_INET6, unix.SOCK_DGRAM)
	bindFD(t, conn, "::1")
	peer := newSock(t, unix.AF_INET6, unix.SOCK_DGRAM)
	bindFD(t, peer, "::1")
	peerAddr, _ := sockEnds(t, peer)
	if err := unix.Connect(conn, sockaddrOf(peerAddr)); err != nil {
		t.Fatal(err)
	}
	sender := newSock(t, unix.AF_INET, unix.SOCK_DGRAM)
	unconnAddr, _ := sockEnds(t, unconn)
	if err := unix.Sendto(sender, []byte("hello"), 0, sockaddrOf(unconnAddr)); err != nil {
		t.Fatal(err)
	}

	l, r := sockEnds(t, unconn)
	s := waitForSocket(t, Options{UDP: true}, "the unconnected UDP socket", tuple(UDP, l, r))
	wantInet(t, "UNCONN udp", s, unconn, tcpstate.Close, 4243)
	if s.RecvQ == 0 {
		t.Errorf("UNCONN udp with an unread datagram: Recv-Q 0")
	}
	l, r = sockEnds(t, conn)
	s = waitForSocket(t, Options{UDP: true}, "the connected UDP socket", tuple(UDP, l, r))
	wantInet(t, "ESTAB udp", s, conn, tcpstate.Established, 0)
	if s.RecvQ != 0 || s.TCPInfo != nil {
		t.Errorf("ESTAB udp: Recv-Q %d tcp_info %v, want 0 and none", s.RecvQ, s.TCPInfo)
	}
}

// TestDumpCgroupID checks INET_DIAG_CGROUP_ID against the cgroup v2
// directory's inode, which is what the kernel's cgroup id is.
func TestDumpCgroupID(t *testing.T) {
	testutil.RequireRoot(t)
	dir := cgroup2Dir(t)
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	ln, _ := listenTCP(t, unix.AF_INET, "127.0.0.1", 1)
	l, r := sockEnds(t, ln)
	s := waitForSocket(t, Options{TCP: true}, "the listener", tuple(TCP, l, r))
	if s.CgroupID != st.Ino {
		t.Errorf("cgroup id %d, want %d (inode of %s)", s.CgroupID, st.Ino, dir)
	}
}

// cgroup2Dir is this process's cgroup v2 directory, from /proc/self/cgroup
// ("0::/path") and the cgroup2 mount in /proc/self/mountinfo.
func cgroup2Dir(t *testing.T) string {
	t.Helper()
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	path, mount := "", ""
	for _, line := range strings.Split(string(cg), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			path = rest
		}
	}
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "cgroup2" {
				mount = f[4]
			}
		}
	}
	if path == "" || mount == "" {
		t.Fatalf("no cgroup v2 here (cgroup %q, mount %q): the kernel reports cgroup ids only for v2", path, mount)
	}
	return mount + path
}

// TestTCPInfoOffsets pins the offsets decodeTCPInfo reads to x/sys/unix's
// generated struct tcp_info.
func TestTCPInfoOffsets(t *testing.T) {
	var ti unix.TCPInfo
	for _, tt := range []struct {
		name      string
		ours, sys uintptr
	}{
		{"retransmits", tiRetransmits, unsafe.Offsetof(ti.Retransmits)},
		{"snd_mss", tiSndMSS, unsafe.Offsetof(ti.Snd_mss)},
		{"rcv_mss", tiRcvMSS, unsafe.Offsetof(ti.Rcv_mss)},
		{"lost", tiLost, unsafe.Offsetof(ti.Lost)},
		{"retrans", tiRetrans, unsafe.Offsetof(ti.Retrans)},
		{"last_data_sent", tiLastDataSent, unsafe.Offsetof(ti.Last_data_sent)},
		{"last_data_recv", tiLastDataRecv, unsafe.Offsetof(ti.Last_data_recv)},
		{"last_ack_recv", tiLastAckRecv, unsafe.Offsetof(ti.Last_ack_recv)},
		{"rtt", tiRTT, unsafe.Offsetof(ti.Rtt)},
		{"rttvar", tiRTTVar, unsafe.Offsetof(ti.Rttvar)},
		{"snd_cwnd", tiSndCwnd, unsafe.Offsetof(ti.Snd_cwnd)},
		{"total_retrans", tiTotalRetrans, unsafe.Offsetof(ti.Total_retrans)},
		{"bytes_acked", tiBytesAcked, unsafe.Offsetof(ti.Bytes_acked)},
		{"bytes_received", tiBytesReceived, unsafe.Offsetof(ti.Bytes_received)},
		{"bytes_sent", tiBytesSent, unsafe.Offsetof(ti.Bytes_sent)},
	} {
		if tt.ours != tt.sys {
			t.Errorf("tcp_info %s at offset %d, x/sys/unix says %d", tt.name, tt.ours, tt.sys)
		}
	}
}

// TestDecodeTCPInfoByLength: an older kernel's shorter tcp_info decodes
// what it has and leaves the rest zero; one too short for the basics is
// ignored rather than read out of bounds.
func TestDecodeTCPInfoByLength(t *testing.T) {
	full := make([]byte, unix.SizeofTCPInfo)
	binary.NativeEndian.PutUint32(full[tiRTT:], 1500)
	binary.NativeEndian.PutUint64(full[tiBytesAcked:], 10)
	binary.NativeEndian.PutUint64(full[tiBytesSent:], 20)
	for _, tt := range []struct {
		name        string
		length      int
		rtt         time.Duration
		acked, sent uint64
		wantInfo    bool
	}{
		{"6.x", len(full), 1500 * time.Microsecond, 10, 20, true},
		{"4.1 (no bytes_sent)", 160, 1500 * time.Microsecond, 10, 0, true},
		{"3.x (no byte counters)", 104, 1500 * time.Microsecond, 0, 0, true},
		{"truncated", 60, 0, 0, 0, false},
	} {
		var s Socket
		var a arena
		s.Protocol = TCP
		inetAttr(&s, inetDiagInfo, full[:tt.length], &a)
		if (s.TCPInfo != nil) != tt.wantInfo {
			t.Errorf("%s: TCPInfo %v, want present %v", tt.name, s.TCPInfo, tt.wantInfo)
			continue
		}
		if ti := s.TCPInfo; ti != nil && (ti.RTT != tt.rtt || ti.BytesAcked != tt.acked || ti.BytesSent != tt.sent) {
			t.Errorf("%s: rtt %v acked %d sent %d, want %v %d %d", tt.name, ti.RTT, ti.BytesAcked, ti.BytesSent, tt.rtt, tt.acked, tt.sent)
		}
	}
}
