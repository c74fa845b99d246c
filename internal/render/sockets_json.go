package render

import (
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
	"github.com/socklife/socklife/snapshot"
)

// SocketJSON is one socket in -o json / ndjson. The keys are part of the
// interface scripts rely on: README documents each one.
type SocketJSON struct {
	Netid  string `json:"netid"`
	Family string `json:"family"`
	State  string `json:"state"`
	Netns  uint32 `json:"netns"`
	// NetnsName is what lives in the namespace: its pod or container, or
	// its /run/netns name; absent when nothing names it.
	NetnsName string `json:"netns_name,omitempty"`
	RecvQ     uint32 `json:"recv_q"`
	SendQ     uint32 `json:"send_q"`
	// Local and Remote are "addr:port" ("[::1]:22" for IPv6), as trace and
	// record write them; the ports are repeated as numbers for filtering.
	Local      string `json:"local,omitempty"`
	LocalPort  uint16 `json:"local_port"`
	Remote     string `json:"remote,omitempty"`
	RemotePort uint16 `json:"remote_port"`
	Interface  string `json:"interface,omitempty"`
	// V6Only is IPV6_V6ONLY, for IPv6 TCP and UDP sockets (not for
	// TIME-WAIT and SYN-RECV ones: the kernel does not report it).
	V6Only    *bool  `json:"v6only,omitempty"`
	Path      string `json:"path,omitempty"`
	PeerInode uint64 `json:"peer_inode,omitempty"`
	UID       uint32 `json:"uid"`
	Inode     uint64 `json:"inode"`
	Cookie    uint64 `json:"cookie"`
	CgroupID  uint64 `json:"cgroup_id,omitempty"`
	// Container is absent for the host's sockets.
	Container *ContainerJSON `json:"container,omitempty"`

	TCPInfo *TCPInfoJSON `json:"tcp_info,omitempty"`
	Memory  *MemJSON     `json:"memory,omitempty"`
	Timer   *TimerJSON   `json:"timer,omitempty"`
	// Processes is absent when owners were not looked up (--no-process)
	// and [] when they were but no process holds the socket.
	Processes *[]ProcessJSON `json:"processes,omitempty"`
}

// TCPInfoJSON is the tcp_info subset; durations in microseconds or milliseconds as named.
type TCPInfoJSON struct {
	RTTUs          int64  `json:"rtt_us"`
	RTTVarUs       int64  `json:"rttvar_us"`
	Retransmits    uint8  `json:"retransmits"`
	Retrans        uint32 `json:"retrans"`
	TotalRetrans   uint32 `json:"total_retrans"`
	Lost           uint32 `json:"lost"`
	BytesAcked     uint64 `json:"bytes_acked"`
	BytesReceived  uint64 `json:"bytes_received"`
	BytesSent      uint64 `json:"bytes_sent"`
	LastDataSentMs int64  `json:"last_data_sent_ms"`
	LastDataRecvMs int64  `json:"last_data_recv_ms"`
	LastAckRecvMs  int64  `json:"last_ack_recv_ms"`
	SndCwnd        uint32 `json:"snd_cwnd"`
	SndMSS         uint32 `json:"snd_mss"`
	RcvMSS         uint32 `json:"rcv_mss"`
}

// MemJSON is skmeminfo (ss -m), in bytes, and the socket's drop count.
type MemJSON struct {
	RmemAlloc  uint32 `json:"rmem_alloc"`
	RcvBuf     uint32 `json:"rcv_buf"`
	WmemAlloc  uint32 `json:"wmem_alloc"`
	SndBuf     uint32 `json:"snd_buf"`
	FwdAlloc   uint32 `json:"fwd_alloc"`
	WmemQueued uint32 `json:"wmem_queued"`
	OptMem     uint32 `json:"opt_mem"`
	Backlog    uint32 `json:"backlog"`
	Drops      uint32 `json:"drops"`
}

// TimerJSON is the pending TCP timer.
type TimerJSON struct {
	Kind        string `json:"kind"`
	ExpiresMs   int64  `json:"expires_ms"`
	Retransmits uint8  `json:"retransmits"`
}

// ProcessJSON is one holder of the socket.
type ProcessJSON struct {
	PID  int32  `json:"pid"`
	Comm string `json:"comm"`
	FD   int32  `json:"fd"`
}

var timerNames = map[snapshot.TimerKind]string{
	snapshot.TimerRetransmit:      "retransmit",
	snapshot.TimerKeepalive:       "keepalive",
	snapshot.TimerTimeWait:        "timewait",
	snapshot.TimerZeroWindowProbe: "persist",
}

// ToJSON converts s. withProcesses says whether owners were looked up.
func SocketToJSON(s *snapshot.Socket, withProcesses bool, names *Names) SocketJSON {
	j := SocketJSON{
		Netid:     Netid(s),
		Family:    FamilyName(s.Family),
		State:     s.State.KernelName(),
		Netns:     s.Netns,
		NetnsName: names.NetnsName(s.Netns),
		RecvQ:     s.RecvQ,
		SendQ:     s.SendQ,
		UID:       s.UID,
		Inode:     s.Inode,
		Cookie:    s.Cookie,

		CgroupID:  s.CgroupID,
		Interface: names.In(s.Netns, s.Interface),
	}
	j.Container = ContainerToJSON(names.SocketContainer(s))
	if s.Protocol == snapshot.Unix {
		j.Path, j.PeerInode = s.Path, s.PeerInode
	} else {
		zone := zoneOf(names, s.Netns, s.Interface, s.Local, s.Remote)
		j.Local, j.LocalPort = addrPortString(s.Family, s.Local, zone), s.Local.Port()
		j.Remote, j.RemotePort = addrPortString(s.Family, s.Remote, zone), s.Remote.Port()
		if s.Family == unix.AF_INET6 && s.State != tcpstate.TimeWait && s.State != tcpstate.SynRecv {
			v6only := s.V6Only
			j.V6Only = &v6only
		}
	}
	if ti := s.TCPInfo; ti != nil {
		j.TCPInfo = &TCPInfoJSON{
			RTTUs: ti.RTT.Microseconds(), RTTVarUs: ti.RTTVar.Microseconds(),
			Retransmits: ti.Retransmits, Retrans: ti.Retrans, TotalRetrans: ti.TotalRetrans, Lost: ti.Lost,
			BytesAcked: ti.BytesAcked, BytesReceived: ti.BytesReceived, BytesSent: ti.BytesSent,
			LastDataSentMs: ti.LastDataSent.Milliseconds(), LastDataRecvMs: ti.LastDataRecv.Milliseconds(),
			LastAckRecvMs: ti.LastAckRecv.Milliseconds(),
			SndCwnd:       ti.SndCwnd, SndMSS: ti.SndMSS, RcvMSS: ti.RcvMSS,
		}
	}
	if m := s.MemInfo; m != nil {
		mj := MemJSON(*m)
		j.Memory = &mj
	}
	if t := s.Timer; t != nil && t.Kind != snapshot.TimerNone {
		j.Timer = &TimerJSON{Kind: timerNames[t.Kind], ExpiresMs: t.Expires.Milliseconds(), Retransmits: t.Retransmits}
	}
	if withProcesses {
		procs := make([]ProcessJSON, len(s.Processes))
		for i, p := range s.Processes {
			procs[i] = ProcessJSON(p)
		}
		j.Processes = &procs
	}
	return j
}

func addrPortString(family uint8, ap netip.AddrPort, zone string) string {
	if !ap.Addr().IsValid() {
		return ""
	}
	return string(appendEndpoint(nil, family, ap, zone, false))
}
