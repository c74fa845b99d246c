package churn

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// backlog is well above the number of clients, which have at most one
// connection each in the accept queue: no SYN is ever dropped for overflow,
// so no connect waits out a retransmission.
const backlog = 1024

// listen binds a loopback address; port 0 lets the kernel pick.
func listen(addr [4]byte, port uint16) (fd int, bound uint16, err error) {
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("socket: %w", err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return -1, 0, fmt.Errorf("setting SO_REUSEADDR: %w", err)
	}
	if err = unix.Bind(fd, &unix.SockaddrInet4{Addr: addr, Port: int(port)}); err != nil {
		return -1, 0, fmt.Errorf("bind: %w", err)
	}
	if err = unix.Listen(fd, backlog); err != nil {
		return -1, 0, fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return -1, 0, fmt.Errorf("getsockname: %w", err)
	}
	return fd, uint16(sa.(*unix.SockaddrInet4).Port), nil
}

// exchange is one client connection: connect, send a byte, read it back,
// close first.
func (g *Generator) exchange(dst *unix.SockaddrInet4) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(g.cfg.ReadTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("setting SO_RCVTIMEO: %w", err)
	}
	if err := unix.Connect(fd, dst); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	buf := [1]byte{'c'}
	if err := writeByte(fd, buf[:]); err != nil {
		return err
	}
	n, err := readRetry(fd, buf[:])
	switch {
	case errors.Is(err, unix.EAGAIN):
		return fmt.Errorf("no reply within %v", g.cfg.ReadTimeout)
	case err != nil:
		return fmt.Errorf("reading the reply: %w", err)
	case n != 1 || buf[0] != 's':
		return fmt.Errorf("reading the reply: %w", ErrShortExchange)
	}
	return nil
}

// serve accepts and answers connections on one listener until it is shut
// down. A connection that breaks off is closed and not counted; the client
// reports why.
func (g *Generator) serve(ln int) {
	defer g.servers.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for {
		fd, err := accept(ln)
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
			continue
		case errors.Is(err, unix.EINVAL):
			return // the listener was shut down
		case err != nil:
			err = fmt.Errorf("churn: accept: %w", err)
			g.serveErr.CompareAndSwap(nil, &err)
			return
		}
		// Counted after the close: Run returns once every server socket
		// has sent its FIN, which the kernel-counter test relies on.
		ok := answer(fd)
		unix.Close(fd)
		if ok {
			g.served.Add(1)
		} else {
			g.broken.Add(1)
		}
	}
}

// answer reads the client's byte, replies and waits for the client's EOF,
// so that the client is always the one to close first.
func answer(fd int) bool {
	var buf [1]byte
	if n, err := readRetry(fd, buf[:]); err != nil || n != 1 || buf[0] != 'c' {
		return false
	}
	buf[0] = 's'
	if writeByte(fd, buf[:]) != nil {
		return false
	}
	n, err := readRetry(fd, buf[:])
	return err == nil && n == 0
}

// accept takes the next connection without its address: unix.Accept4
// converts the address and, for AF_INET, asks the kernel the socket's
// protocol to do it, a system call per connection the churn does not need.
func accept(ln int) (int, error) {
	fd, _, errno := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(ln), 0, 0, unix.SOCK_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

func writeByte(fd int, b []byte) error {
	n, err := unix.Write(fd, b)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("write: %w", ErrShortExchange)
	}
	return nil
}

// readRetry reads, retrying when a signal interrupts the wait: a socket with
// SO_RCVTIMEO is not restarted by SA_RESTART, and the Go runtime signals
// its threads for preemption.
func readRetry(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}
