package snapshot

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/ssfilter"
	"github.com/socklife/socklife/internal/tcpstate"
)

// Layouts from include/uapi/linux/inet_diag.h; x/sys/unix has no types for
// them. struct inet_diag_sockid is 48 bytes: sport, dport (big endian),
// src[4], dst[4] (__be32 each), if, cookie[2].
const (
	sizeofInetDiagReqV2 = 8 + 48 // family, protocol, ext, pad, states, sockid
	sizeofInetDiagMsg   = 4 + 48 + 5*4
)

// Attribute numbers (enum of INET_DIAG_*). x/sys/unix lacks most of them.
const (
	inetDiagInfo      = 2
	inetDiagCong      = 4
	inetDiagTOS       = 5
	inetDiagTClass    = 6
	inetDiagSKMemInfo = 7
	inetDiagShutdown  = 8
	inetDiagV6Only    = 11
	inetDiagMark      = 15
	inetDiagCgroupID  = 21 // 5.8+, sent unconditionally for full sockets
)

// inetDiagReq builds an inet_diag_req_v2 for a whole-table dump of one
// family and protocol. States are filtered in the kernel: a socket outside
// the mask never crosses into user space; so are the sockets a bytecode
// program (ssfilter's) rejects, when bc is not nil.
func inetDiagReq(family, protocol uint8, states tcpstate.Mask, info bool, bc []byte) []byte {
	req := make([]byte, sizeofInetDiagReqV2)
	req[0] = family
	req[1] = protocol
	if info {
		// idiag_ext holds 1<<(ext-1) for the first eight extensions.
		req[2] = 1<<(inetDiagInfo-1) | 1<<(inetDiagCong-1) | 1<<(inetDiagTOS-1) |
			1<<(inetDiagTClass-1) | 1<<(inetDiagSKMemInfo-1)
	}
	binary.NativeEndian.PutUint32(req[4:], uint32(states))
	if bc != nil {
		req = appendAttr(req, ssfilter.AttrBytecode, bc)
	}
	return req
}

// appendAttr appends one netlink attribute (struct rtattr and value,
// padded to 4 bytes).
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	l := rtaHdrLen + len(v)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	return append(b, make([]byte, nlmsgAlignLen(l)-l)...)
}

// decodeInet decodes one inet_diag_msg and its attributes into s. proto is
// the protocol the dump asked for (the message does not repeat it).
func decodeInet(b []byte, proto Protocol, s *Socket, a *arena) error {
	if len(b) < sizeofInetDiagMsg {
		return fmt.Errorf("%w: inet_diag_msg of %d bytes", errTruncated, len(b))
	}
	*s = Socket{Protocol: proto, Family: b[0], State: tcpstate.State(b[1])}
	sport := binary.BigEndian.Uint16(b[4:])
	dport := binary.BigEndian.Uint16(b[6:])
	src, dst := b[8:24], b[24:40]
	switch s.Family {
	case unix.AF_INET:
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(src[:4])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(dst[:4])), dport)
	case unix.AF_INET6:
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(src)), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(dst)), dport)
	default:
		return fmt.Errorf("inet_diag_msg with family %d", s.Family)
	}
	s.Interface = binary.NativeEndian.Uint32(b[40:])
	s.Cookie = uint64(binary.NativeEndian.Uint32(b[44:])) | uint64(binary.NativeEndian.Uint32(b[48:]))<<32
	if kind := TimerKind(b[2]); kind != TimerNone {
		t := a.timer()
		*t = Timer{Kind: kind, Retransmits: b[3], Expires: msec(binary.NativeEndian.Uint32(b[52:]))}
		s.Timer = t
	}
	s.RecvQ = binary.NativeEndian.Uint32(b[56:])
	s.SendQ = binary.NativeEndian.Uint32(b[60:])
	s.UID = binary.NativeEndian.Uint32(b[64:])
	s.Inode = uint64(binary.NativeEndian.Uint32(b[68:]))
	return attrs(b[sizeofInetDiagMsg:], func(typ uint16, v []byte) { inetAttr(s, typ, v, a) })
}

func inetAttr(s *Socket, typ uint16, v []byte, a *arena) {
	switch typ {
	case inetDiagInfo:
		// udp_diag answers an INFO request with nothing; a TCP socket in
		// LISTEN gets a tcp_info too, that is fine.
		if s.Protocol == TCP && len(v) >= tcpInfoMinLen {
			s.TCPInfo = a.tcpInfo()
			decodeTCPInfo(v, s.TCPInfo)
		}
	case inetDiagSKMemInfo:
		s.MemInfo = decodeMemInfo(v, a)
	case inetDiagCong:
		s.Congestion = internCong(v)
	case inetDiagShutdown:
		if len(v) >= 1 {
			s.Shutdown = v[0]
		}
	case inetDiagTOS, inetDiagTClass:
		if len(v) >= 1 {
			s.TOS = v[0]
		}
	case inetDiagV6Only:
		s.V6Only = len(v) >= 1 && v[0] != 0
	case inetDiagMark:
		if len(v) >= 4 {
			s.Mark = binary.NativeEndian.Uint32(v)
		}
	case inetDiagCgroupID:
		if len(v) >= 8 {
			s.CgroupID = binary.NativeEndian.Uint64(v)
		}
	}
}

func msec(ms uint32) time.Duration { return time.Duration(ms) * time.Millisecond }

func usec(us uint32) time.Duration { return time.Duration(us) * time.Microsecond }

// Offsets in struct tcp_info (include/uapi/linux/tcp.h). The struct only ever
// grows at the end, so each field is read only when the attribute is long
// enough to hold it: an older kernel's tcp_info simply leaves the rest zero.
const (
	tiRetransmits   = 2
	tiSndMSS        = 16
	tiRcvMSS        = 20
	tiLost          = 32
	tiRetrans       = 36
	tiLastDataSent  = 44
	tiLastDataRecv  = 52
	tiLastAckRecv   = 56
	tiRTT           = 68
	tiRTTVar        = 72
	tiSndCwnd       = 80
	tiTotalRetrans  = 100
	tiBytesAcked    = 120 // 4.1+
	tiBytesReceived = 128 // 4.1+
	tiBytesSent     = 200 // 4.19+
	tcpInfoMinLen   = tiTotalRetrans + 4
)

func decodeTCPInfo(v []byte, ti *TCPInfo) {
	u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(v[off:]) }
	u64 := func(off int) uint64 {
		if off+8 > len(v) {
			return 0
		}
		return binary.NativeEndian.Uint64(v[off:])
	}
	*ti = TCPInfo{
		RTT:           usec(u32(tiRTT)),
		RTTVar:        usec(u32(tiRTTVar)),
		Retransmits:   v[tiRetransmits],
		Retrans:       u32(tiRetrans),
		TotalRetrans:  u32(tiTotalRetrans),
		Lost:          u32(tiLost),
		BytesAcked:    u64(tiBytesAcked),
		BytesReceived: u64(tiBytesReceived),
		BytesSent:     u64(tiBytesSent),
		LastDataSent:  msec(u32(tiLastDataSent)),
		LastDataRecv:  msec(u32(tiLastDataRecv)),
		LastAckRecv:   msec(u32(tiLastAckRecv)),
		SndCwnd:       u32(tiSndCwnd),
		SndMSS:        u32(tiSndMSS),
		RcvMSS:        u32(tiRcvMSS),
	}
}

// decodeMemInfo reads sock_diag's u32[SK_MEMINFO_VARS] (INET_DIAG_SKMEMINFO,
// UNIX_DIAG_MEMINFO) into a MemInfo from a; nil if v is short.
func decodeMemInfo(v []byte, a *arena) *MemInfo {
	if len(v) < 4*unix.SK_MEMINFO_VARS {
		return nil
	}
	u32 := func(i int) uint32 { return binary.NativeEndian.Uint32(v[4*i:]) }
	m := a.memInfo()
	*m = MemInfo{
		RmemAlloc:  u32(unix.SK_MEMINFO_RMEM_ALLOC),
		RcvBuf:     u32(unix.SK_MEMINFO_RCVBUF),
		WmemAlloc:  u32(unix.SK_MEMINFO_WMEM_ALLOC),
		SndBuf:     u32(unix.SK_MEMINFO_SNDBUF),
		FwdAlloc:   u32(unix.SK_MEMINFO_FWD_ALLOC),
		WmemQueued: u32(unix.SK_MEMINFO_WMEM_QUEUED),
		OptMem:     u32(unix.SK_MEMINFO_OPTMEM),
		Backlog:    u32(unix.SK_MEMINFO_BACKLOG),
		Drops:      u32(unix.SK_MEMINFO_DROPS),
	}
	return m
}

// knownCong are the congestion control names seen in practice; returning a
// shared string keeps a 100,000-socket dump from allocating one per socket.
var knownCong = []string{"cubic", "reno", "bbr", "dctcp", "htcp", "vegas", "westwood", "bic", "illinois"}

func internCong(v []byte) string {
	// The attribute is a NUL-terminated string.
	for i, c := range v {
		if c == 0 {
			v = v[:i]
			break
		}
	}
	for _, k := range knownCong {
		if string(v) == k {
			return k
		}
	}
	return string(v)
}
