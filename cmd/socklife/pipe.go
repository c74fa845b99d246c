package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// cancelOnBrokenPipe calls cancel when out is a pipe whose reader has gone
// (`socklife trace --port 1 | head -1`): without it a quiet stream would
// notice only at its next write, which may never come.
func cancelOnBrokenPipe(out io.Writer, cancel func()) {
	f, ok := out.(*os.File)
	if !ok {
		return
	}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return
	}
	go func() {
		// With no events asked for, poll reports only POLLERR (the read end
		// closed) and POLLHUP; it blocks until then, or until we exit.
		fds := []unix.PollFd{{Fd: int32(f.Fd())}}
		for {
			n, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || (n > 0 && fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0) {
				cancel()
				return
			}
		}
	}()
}
