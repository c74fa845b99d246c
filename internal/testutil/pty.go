package testutil

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal of a chosen size: a program given Slave as its
// stdin and stdout sees a real terminal, and what it draws collects in Output.
type PTY struct {
	Master, Slave *os.File
	mu            sync.Mutex
	out           bytes.Buffer
	done          chan struct{}
}

// OpenPTY opens a rows x cols terminal, closed when the test ends.
func OpenPTY(tb testing.TB, rows, cols int) *PTY {
	tb.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("opening /dev/ptmx: %v", err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		tb.Fatalf("unlocking the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		tb.Fatalf("numbering the pty: %v", err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_NOFOLLOW, 0)
	if err != nil {
		master.Close()
		tb.Fatalf("opening the pty's terminal: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(rows), Col: uint16(cols)}); err != nil {
		tb.Fatalf("sizing the pty: %v", err)
	}
	p := &PTY{Master: master, Slave: slave, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return // EIO once the last holder of the slave closes it
			}
		}
	}()
	tb.Cleanup(func() {
		slave.Close()
		master.Close()
		<-p.done
	})
	return p
}

// Output is everything drawn so far.
func (p *PTY) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Type sends keys as if typed.
func (p *PTY) Type(tb testing.TB, keys string) {
	tb.Helper()
	if _, err := p.Master.WriteString(keys); err != nil {
		tb.Fatal(err)
	}
}
