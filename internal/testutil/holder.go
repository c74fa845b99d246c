package testutil

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A test binary that imports this package becomes a helper when re-executed
// with helperEnv set: a connection holder (OpenConns) or a renamed listener
// (StartRenamed). Doing it in init, rather than
// in a TestMain each package would have to remember, lets any test package
// use OpenConns; the holder exits before the testing package even starts.
func init() {
	switch os.Getenv(helperEnv) {
	case "conns":
		runHelper("connection holder", holdConns)
	case "renamed":
		runHelper("renamed helper", holdRenamed)
	case "workload":
		runHelper("workload", runWorkload)
	}
}

// runHelper runs a helper role of the test binary and exits with its
// outcome, before the testing package starts.
func runHelper(name string, role func() error) {
	if err := role(); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// holdConns opens the connections, says "ready PORT" on stdout, and keeps
// them until stdin closes.
func holdConns() error {
	n, err := strconv.Atoi(os.Getenv(connsEnv))
	if err != nil {
		return fmt.Errorf("bad %s: %w", connsEnv, err)
	}
	addr, err := netip.ParseAddr(os.Getenv(addrEnv))
	if err != nil || !addr.Is4() {
		return fmt.Errorf("bad %s %q", addrEnv, os.Getenv(addrEnv))
	}
	if err := raiseFDLimit(); err != nil {
		return err
	}
	ln, port, err := listen(addr)
	if err != nil {
		return err
	}
	defer unix.Close(ln)
	if err := connectMany(ln, &unix.SockaddrInet4{Addr: addr.As4(), Port: port}, n); err != nil {
		return err
	}
	if _, err := fmt.Printf("ready %d\n", port); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

func raiseFDLimit() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raising RLIMIT_NOFILE: %w", err)
	}
	return nil
}

// acceptBatch is how many connections wait in the accept queue at once. It
// must stay below the listen backlog (somaxconn, 4096 by default): a SYN to a
// full queue is dropped and its connect stalls a second for the retransmit.
const acceptBatch = 1024

func listen(addr netip.Addr) (fd, port int, err error) {
	fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("creating listener: %w", err)
	}
	if err = unix.Bind(fd, &unix.SockaddrInet4{Addr: addr.As4()}); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("binding listener to %s: %w", addr, err)
	}
	if err = unix.Listen(fd, acceptBatch+1); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("listening on %s: %w", addr, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("reading listener address: %w", err)
	}
	return fd, sa.(*unix.SockaddrInet4).Port, nil
}

// connectMany opens n connections to the listener ln at dst, with blocking
// system calls: on loopback a blocking connect returns once the handshake is
// done, and the Go poller would only add cost. The fds are never closed: the
// process exit does that.
func connectMany(ln int, dst *unix.SockaddrInet4, n int) error {
	for done := 0; done < n; {
		batch := min(acceptBatch, n-done)
		for range batch {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("creating socket %d: %w", done, err)
			}
			if err := abortOnClose(fd); err != nil {
				return err
			}
			if err := unix.Connect(fd, dst); err != nil {
				return fmt.Errorf("connecting socket %d: %w", done, err)
			}
		}
		for range batch {
			fd, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
			if err != nil {
				return fmt.Errorf("accepting connection %d: %w", done, err)
			}
			if err := abortOnClose(fd); err != nil {
				return err
			}
			done++
		}
	}
	return nil
}

// abortOnClose sets SO_LINGER to 0, so that the exit of the holder resets
// its connections instead of leaving tens of thousands in TIME-WAIT.
func abortOnClose(fd int) error {
	err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	if err != nil {
		return fmt.Errorf("setting SO_LINGER: %w", err)
	}
	return nil
}

// helperReadyWithin is how long a helper may take to say it is ready.
const helperReadyWithin = time.Minute

// helperProc is a helper role of the test binary as the parent sees it: it
// says "ready PORT" on stdout once set up, and exits when its stdin closes.
type helperProc struct {
	name   string // "connection holder", for messages
	cmd    *exec.Cmd
	stdin  *os.File // closing it tells the helper to exit
	stderr bytes.Buffer
	ready  chan helperReady
	// out is its stdout, past the ready line once ready has answered:
	// a helper that answers commands on stdin writes its answers there
	out *bufio.Reader
	// waitOnce: a helper may be stopped twice (Conns.Close, then the
	// test's cleanup)
	waitOnce sync.Once
}

// helperReady is the port of a helper's ready line, or why there was none.
type helperReady struct {
	port uint16
	err  error
}

// startHelper re-executes the test binary as role, with env added to the
// environment. -test.run matches nothing, so that if the environment were
// lost the child would run no test rather than all of them again.
func startHelper(name, role string, env ...string) (*helperProc, error) {
	return startHelperWith(name, role, nil, env...)
}

// startHelperWith is startHelper with the child's SysProcAttr: where it is
// born (a cgroup, a network namespace).
func startHelperWith(name, role string, attr *syscall.SysProcAttr, env ...string) (*helperProc, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+role), env...)
	cmd.SysProcAttr = attr
	stdin, childStdin, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &helperProc{name: name, cmd: cmd, ready: make(chan helperReady, 1)}
	cmd.Stdin = stdin
	cmd.Stderr = &p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	err = cmd.Start()
	stdin.Close() // the child has its copy
	if err != nil {
		childStdin.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p.stdin = childStdin
	p.out = bufio.NewReader(stdout)
	go func() {
		line, err := p.out.ReadString('\n')
		if err != nil {
			p.ready <- helperReady{err: fmt.Errorf("exited before ready: %w", err)}
			return
		}
		port, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(line), "ready "), 10, 16)
		if err != nil {
			err = fmt.Errorf("unexpected ready line %q", line)
		}
		p.ready <- helperReady{uint16(port), err}
	}()
	return p, nil
}

func (p *helperProc) pid() int { return p.cmd.Process.Pid }

// waitReady returns the port the helper's ready line names, or why it has
// not said it is ready by deadline.
func (p *helperProc) waitReady(deadline <-chan time.Time) (uint16, error) {
	select {
	case r := <-p.ready:
		if r.err != nil {
			return 0, fmt.Errorf("%s %d: %w: %s", p.name, p.pid(), r.err, strings.TrimSpace(p.stderr.String()))
		}
		return r.port, nil
	case <-deadline:
		return 0, fmt.Errorf("%s %d: not ready after %v", p.name, p.pid(), Scaled(helperReadyWithin))
	}
}

// stop closes the helper's stdin, which makes it exit, and waits for it;
// a helper that does not exit promptly is killed.
func (p *helperProc) stop() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() {
		p.waitOnce.Do(func() { p.cmd.Wait() })
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// runWorkload is the workload's side: it runs in init, on the main thread.
func runWorkload() error {
	name := append([]byte(os.Getenv(workloadEnv)), 0)
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NAME): %w", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var kept []net.Conn // never closed: a peer's close leaves CLOSE_WAIT
	accepted := make(chan net.Conn)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	go func() {
		for c := range accepted {
			kept = append(kept, c)
		}
	}()
	fmt.Printf("ready %d\n", ln.Addr().(*net.TCPAddr).Port)
	sc := bufio.NewScanner(os.Stdin)
	var dialed []net.Conn
	for sc.Scan() {
		if sc.Text() == "close" {
			for _, c := range dialed {
				c.Close()
			}
			fmt.Printf("closed %d\n", len(dialed))
			dialed = nil
			continue
		}
		port, ok := strings.CutPrefix(sc.Text(), "connect ")
		if !ok {
			fmt.Printf("error unknown command %q\n", sc.Text())
			continue
		}
		c, err := net.Dial("tcp4", "127.0.0.1:"+port)
		if err != nil {
			fmt.Printf("error %v\n", err)
			continue
		}
		dialed = append(dialed, c)
		fmt.Printf("connected %d\n", c.LocalAddr().(*net.TCPAddr).Port)
	}
	return sc.Err()
}
