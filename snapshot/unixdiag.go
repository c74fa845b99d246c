package snapshot

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/tcpstate"
)

// Layouts from include/uapi/linux/unix_diag.h.
const (
	// family, protocol, pad16, states, ino, show, cookie[2]
	sizeofUnixDiagReq = 24
	// family, type, state, pad, ino, cookie[2]
	sizeofUnixDiagMsg = 16
)

// udiag_show bits and UNIX_DIAG_* attribute numbers.
const (
	udiagShowName  = 0x01
	udiagShowVFS   = 0x02
	udiagShowPeer  = 0x04
	udiagShowRQLen = 0x10
	udiagShowMem   = 0x20 // UDIAG_SHOW_MEMINFO: ss -m's skmem
	udiagShowUID   = 0x40 // 5.3+; older kernels ignore the bit

	unixDiagName     = 0
	unixDiagVFS      = 1
	unixDiagPeer     = 2
	unixDiagRQLen    = 4
	unixDiagMemInfo  = 5
	unixDiagShutdown = 6
	unixDiagUID      = 7
)

// unixDiagReq asks for every Unix socket in states; with info, for their
// memory too (Options.Info: ss -m, as for inet sockets).
func unixDiagReq(states tcpstate.Mask, info bool) []byte {
	req := make([]byte, sizeofUnixDiagReq)
	req[0] = unix.AF_UNIX
	binary.NativeEndian.PutUint32(req[4:], uint32(states))
	show := uint32(udiagShowName | udiagShowVFS | udiagShowPeer | udiagShowRQLen | udiagShowUID)
	if info {
		show |= udiagShowMem
	}
	binary.NativeEndian.PutUint32(req[12:], show)
	return req
}

// decodeUnix decodes one unix_diag_msg and its attributes into s.
func decodeUnix(b []byte, s *Socket, a *arena) error {
	if len(b) < sizeofUnixDiagMsg {
		return fmt.Errorf("%w: unix_diag_msg of %d bytes", errTruncated, len(b))
	}
	*s = Socket{
		Protocol: Unix,
		Family:   b[0],
		UnixType: UnixType(b[1]),
		State:    tcpstate.State(b[2]),
		Inode:    uint64(binary.NativeEndian.Uint32(b[4:])),
		Cookie:   uint64(binary.NativeEndian.Uint32(b[8:])) | uint64(binary.NativeEndian.Uint32(b[12:]))<<32,
	}
	return attrs(b[sizeofUnixDiagMsg:], func(typ uint16, v []byte) { unixAttr(s, typ, v, a) })
}

func unixAttr(s *Socket, typ uint16, v []byte, a *arena) {
	switch typ {
	case unixDiagMemInfo:
		s.MemInfo = decodeMemInfo(v, a) // the same array as INET_DIAG_SKMEMINFO
	case unixDiagName:
		s.Path = unixPath(v)
	case unixDiagPeer:
		if len(v) >= 4 {
			s.PeerInode = uint64(binary.NativeEndian.Uint32(v))
		}
	case unixDiagRQLen:
		// For a listener: accept-queue length and backlog, as for TCP.
		if len(v) >= 8 {
			s.RecvQ = binary.NativeEndian.Uint32(v)
			s.SendQ = binary.NativeEndian.Uint32(v[4:])
		}
	case unixDiagUID:
		if len(v) >= 4 {
			s.UID = binary.NativeEndian.Uint32(v)
		}
	case unixDiagShutdown:
		if len(v) >= 1 {
			s.Shutdown = v[0]
		}
	}
}

// unixPath renders a sun_path the way ss does: an abstract name (leading
// NUL) starts with "@", a filesystem path stops at its first NUL.
func unixPath(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if v[0] == 0 {
		return "@" + string(v[1:])
	}
	for i, c := range v {
		if c == 0 {
			return string(v[:i])
		}
	}
	return string(v)
}
