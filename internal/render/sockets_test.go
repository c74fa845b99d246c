package render

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
)

func TestAppendAddrPort(t *testing.T) {
	tests := []struct {
		ap    string
		iface string
		want  string
	}{
		{"10.0.0.1:80", "", "10.0.0.1:80"},
		{"0.0.0.0:0", "", "0.0.0.0:*"},
		{"[::]:22", "", "[::]:22"},
		{"[::ffff:127.0.0.1]:8080", "", "[::ffff:127.0.0.1]:8080"},
		{"127.0.0.53:53", "lo", "127.0.0.53%lo:53"},
		{"[fe80::1%eth0]:123", "eth0", "[fe80::1]%eth0:123"},
	}
	for _, tt := range tests {
		got := string(AppendAddrPort(nil, netip.MustParseAddrPort(tt.ap), tt.iface))
		if got != tt.want {
			t.Errorf("AppendAddrPort(%s, %q) = %q, want %q", tt.ap, tt.iface, got, tt.want)
		}
	}
	if got := string(AppendAddrPort(nil, netip.AddrPort{}, "")); got != "*:*" {
		t.Errorf("zero AddrPort = %q, want *:*", got)
	}
}

func TestAppendUsers(t *testing.T) {
	procs := []snapshot.Process{{PID: 10, Comm: "nginx", FD: 6}, {PID: 11, Comm: "nginx", FD: 6}}
	want := `users:(("nginx",pid=10,fd=6),("nginx",pid=11,fd=6))`
	if got := string(AppendUsers(nil, procs)); got != want {
		t.Errorf("AppendUsers = %q, want %q", got, want)
	}
	if got := AppendUsers(nil, nil); len(got) != 0 {
		t.Errorf("AppendUsers(nil) = %q, want nothing", got)
	}
}

func TestNetid(t *testing.T) {
	tests := []struct {
		s    snapshot.Socket
		want string
	}{
		{snapshot.Socket{Protocol: snapshot.TCP}, "tcp"},
		{snapshot.Socket{Protocol: snapshot.UDP}, "udp"},
		{snapshot.Socket{Protocol: snapshot.Unix, UnixType: unix.SOCK_STREAM}, "u_str"},
		{snapshot.Socket{Protocol: snapshot.Unix, UnixType: unix.SOCK_DGRAM}, "u_dgr"},
		{snapshot.Socket{Protocol: snapshot.Unix, UnixType: unix.SOCK_SEQPACKET}, "u_seq"},
	}
	for _, tt := range tests {
		if got := Netid(&tt.s); got != tt.want {
			t.Errorf("Netid(%+v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestWriteSockets(t *testing.T) {
	socks := []snapshot.Socket{
		{Protocol: snapshot.TCP, State: tcpstate.Listen, SendQ: 4096,
			Local: netip.MustParseAddrPort("0.0.0.0:22"), Remote: netip.MustParseAddrPort("0.0.0.0:0"),
			Processes: []snapshot.Process{{PID: 612, Comm: "sshd", FD: 3}}},
		{Protocol: snapshot.Unix, UnixType: unix.SOCK_STREAM, State: tcpstate.Established,
			Path: "/run/dbus/system_bus_socket", Inode: 23456, PeerInode: 23455},
	}
	var out bytes.Buffer
	if err := WriteSockets(&out, socks, TableOptions{Processes: true}, &Names{}); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"Netid  State   Recv-Q  Send-Q  Local Address:Port                 Peer Address:Port  Process\n" +
		"tcp    LISTEN       0    4096  0.0.0.0:22                         0.0.0.0:*          users:((\"sshd\",pid=612,fd=3))\n" +
		"u_str  ESTAB        0       0  /run/dbus/system_bus_socket 23456  * 23455            \n"
	if out.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestToJSON(t *testing.T) {
	s := snapshot.Socket{
		Protocol: snapshot.TCP, Family: unix.AF_INET6, State: tcpstate.CloseWait, Netns: 4026531840,
		RecvQ: 1, Local: netip.MustParseAddrPort("[::1]:8080"), Remote: netip.MustParseAddrPort("[::1]:40000"),
		UID: 1000, Inode: 77, Cookie: 99,
		TCPInfo: &snapshot.TCPInfo{RTT: 1500 * time.Microsecond, BytesAcked: 10, LastDataRecv: 2 * time.Second},
		Timer:   &snapshot.Timer{Kind: snapshot.TimerKeepalive, Expires: 3 * time.Second},
	}
	b, err := json.Marshal(SocketToJSON(&s, false, &Names{}))
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		`"netid":"tcp"`, `"family":"inet6"`, `"state":"CLOSE_WAIT"`, `"netns":4026531840`,
		`"local":"[::1]:8080"`, `"local_port":8080`, `"remote":"[::1]:40000"`, `"remote_port":40000`,
		`"rtt_us":1500`, `"bytes_acked":10`, `"last_data_recv_ms":2000`,
		`"timer":{"kind":"keepalive","expires_ms":3000,"retransmits":0}`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("JSON %s lacks %s", got, want)
		}
	}
	if strings.Contains(got, `"processes"`) {
		t.Errorf("processes present although owners were not looked up: %s", got)
	}
	b, _ = json.Marshal(SocketToJSON(&s, true, &Names{}))
	if !strings.Contains(string(b), `"processes":[]`) {
		t.Errorf("looked-up socket without owners must say processes: [], got %s", b)
	}
}
