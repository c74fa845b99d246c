package snapshot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel caps a dump's skbs at 32 KiB (netlink_recvmsg clamps
// max_recvmsg_len to SKB_WITH_OVERHEAD(32768)), so one buffer of that size
// always holds a whole datagram; recvfrom with MSG_TRUNC still tells us if
// that ever stops being true.
const recvBufSize = 32 << 10

const (
	nlmsgHdrLen = unix.SizeofNlMsghdr // 16
	nlmsgAlign  = unix.NLMSG_ALIGNTO  // 4
	rtaHdrLen   = 4
)

var errTruncated = errors.New("truncated netlink message")

// diagConn is one NETLINK_SOCK_DIAG socket and the receive buffer reused for
// every datagram of every dump made through it. Not safe for concurrent use.
type diagConn struct {
	fd  int
	seq uint32
	buf []byte
	// tap, when set (tests only), sees every datagram as received.
	tap func([]byte)
}

// openDiag opens a sock_diag socket in the calling thread's network namespace.
func openDiag() (*diagConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("opening sock_diag netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding sock_diag netlink socket: %w", err)
	}
	return newDiagConn(fd), nil
}

func newDiagConn(fd int) *diagConn {
	return &diagConn{fd: fd, buf: make([]byte, recvBufSize)}
}

func (c *diagConn) Close() error { return unix.Close(c.fd) }

// dump sends one SOCK_DIAG_BY_FAMILY dump request whose body is req and calls
// fn with the payload of every answer message until NLMSG_DONE. what names
// the diag module for errors ("tcp_diag").
func (c *diagConn) dump(ctx context.Context, req []byte, what string, fn func(payload []byte) error) error {
	c.seq++
	msg := make([]byte, nlmsgHdrLen+len(req))
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(msg[8:], c.seq)
	copy(msg[nlmsgHdrLen:], req)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sending %s dump request: %w", what, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := c.recv()
		if err != nil {
			return fmt.Errorf("reading %s dump: %w", what, err)
		}
		if c.tap != nil {
			c.tap(c.buf[:n])
		}
		done, err := walkMessages(c.buf[:n], c.seq, what, fn)
		if err != nil || done {
			return err
		}
	}
}

// recv reads one datagram into c.buf, retrying on EINTR. MSG_TRUNC makes the
// kernel return the datagram's real length so a short buffer is an error,
// not silently lost sockets.
func (c *diagConn) recv() (int, error) {
	for {
		r, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(c.fd),
			uintptr(unsafe.Pointer(&c.buf[0])), uintptr(len(c.buf)), unix.MSG_TRUNC, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return 0, errno
		case int(r) > len(c.buf):
			return 0, fmt.Errorf("datagram of %d bytes exceeds the %d-byte buffer", r, len(c.buf))
		}
		return int(r), nil
	}
}

// walkMessages calls fn for each message of one datagram. It reports done at
// NLMSG_DONE and turns NLMSG_ERROR into an error. Messages for another
// sequence number (a late answer to an abandoned dump) are skipped; seq 0
// accepts any (decoding captured fixtures).
func walkMessages(b []byte, seq uint32, what string, fn func(payload []byte) error) (done bool, err error) {
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return false, errTruncated
		}
		msgLen := int(binary.NativeEndian.Uint32(b[0:]))
		typ := binary.NativeEndian.Uint16(b[4:])
		msgSeq := binary.NativeEndian.Uint32(b[8:])
		if msgLen < nlmsgHdrLen || msgLen > len(b) {
			return false, fmt.Errorf("%w: length %d, %d bytes left", errTruncated, msgLen, len(b))
		}
		payload := b[nlmsgHdrLen:msgLen]
		b = b[min(nlmsgAlignLen(msgLen), len(b)):]
		if seq != 0 && msgSeq != seq {
			continue
		}
		switch typ {
		case unix.NLMSG_DONE:
			return true, doneError(payload, what)
		case unix.NLMSG_ERROR:
			return true, netlinkError(payload, what)
		case unix.NLMSG_NOOP:
			continue
		}
		if err := fn(payload); err != nil {
			return false, err
		}
	}
	return false, nil
}

func nlmsgAlignLen(n int) int { return (n + nlmsgAlign - 1) &^ (nlmsgAlign - 1) }

// doneError reports the error a dump callback may leave in NLMSG_DONE's
// payload (a negative errno, 0 on success).
func doneError(payload []byte, what string) error {
	if len(payload) < 4 {
		return nil
	}
	if errno := -int32(binary.NativeEndian.Uint32(payload)); errno > 0 {
		return fmt.Errorf("%s dump: %w", what, unix.Errno(errno))
	}
	return nil
}

// netlinkError decodes struct nlmsgerr. ENOENT means no handler is
// registered for the family/protocol: the diag module is absent.
func netlinkError(payload []byte, what string) error {
	if len(payload) < 4 {
		return fmt.Errorf("%s dump: %w", what, errTruncated)
	}
	errno := unix.Errno(-int32(binary.NativeEndian.Uint32(payload)))
	switch errno {
	case 0:
		return nil // an ACK
	case unix.ENOENT:
		return fmt.Errorf("%s not available (kernel module not loaded or not built): %w", what, errno)
	}
	return fmt.Errorf("%s dump: %w", what, errno)
}

// attrs iterates over the netlink attributes (struct rtattr) in b, calling fn
// with each type and value. A malformed attribute ends the walk with an error.
func attrs(b []byte, fn func(typ uint16, val []byte)) error {
	for len(b) >= rtaHdrLen {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		typ := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < rtaHdrLen || l > len(b) {
			return fmt.Errorf("%w: attribute %d of length %d, %d bytes left", errTruncated, typ, l, len(b))
		}
		fn(typ, b[rtaHdrLen:l])
		b = b[min(nlmsgAlignLen(l), len(b)):]
	}
	return nil
}
