package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// vmSpec is one boot of one kernel.
type vmSpec struct {
	Kernel, Initrd string
	ConsoleLog     string // ttyS0: kernel messages and /init's progress
	ResultsFile    string // ttyS1: the markers and test output
	Accel          string // "kvm" or "tcg"
	MemMB, CPUs    int
	Timeout        time.Duration // the whole run
	UpTimeout      time.Duration // if set, give up unless /init starts this soon
}

// vmExit says how a boot ended.
type vmExit struct {
	Accel    string
	Up       bool          // /init started
	Panic    bool          // the kernel panicked
	TimedOut bool          // killed at Timeout
	UpLate   bool          // killed at UpTimeout: the accelerator does not work
	Err      error         // qemu's own failure, if it exited non-zero
	UpAfter  time.Duration // qemu start to /init
	Elapsed  time.Duration // qemu start to exit
	Tail     []string      // the console's last lines, for the error message
}

func (s vmSpec) args() []string {
	return []string{
		"-accel", s.Accel, "-cpu", "max",
		"-m", strconv.Itoa(s.MemMB), "-smp", strconv.Itoa(s.CPUs),
		// No default devices: no NIC to probe, no VGA; the tests use lo.
		"-nodefaults", "-display", "none", "-no-reboot",
		"-kernel", s.Kernel, "-initrd", s.Initrd,
		// panic=-1 reboots at once on a panic, and -no-reboot turns that into an exit.
		"-append", "console=ttyS0 quiet panic=-1",
		"-serial", "stdio", "-serial", "file:" + s.ResultsFile,
	}
}

// bootVM runs qemu until the guest powers off, panics or runs out of time.
func bootVM(ctx context.Context, s vmSpec) vmExit {
	start := time.Now()
	ex := vmExit{Accel: s.Accel}
	log, err := os.Create(s.ConsoleLog)
	if err != nil {
		ex.Err = err
		return ex
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", s.args()...)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		ex.Err = err
		return ex
	}
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		ex.Err = fmt.Errorf("starting qemu: %w", err)
		return ex
	}
	con := console{start: start}
	scanned := make(chan struct{})
	go func() {
		con.scan(pipe, log)
		close(scanned)
	}()

	total := time.NewTimer(s.Timeout)
	defer total.Stop()
	var upDeadline <-chan time.Time
	if s.UpTimeout > 0 {
		upDeadline = time.After(s.UpTimeout)
	}
	select {
	case <-scanned: // qemu closed its output: it is exiting
	case <-total.C:
		ex.TimedOut = true
	case <-upDeadline:
		if !con.up.Load() {
			ex.UpLate = true
			break
		}
		// Up in time: now wait for the end.
		select {
		case <-scanned:
		case <-total.C:
			ex.TimedOut = true
		}
	}
	if ex.TimedOut || ex.UpLate {
		_ = cmd.Process.Kill()
	}
	<-scanned
	if err := cmd.Wait(); err != nil && !ex.TimedOut && !ex.UpLate {
		ex.Err = fmt.Errorf("qemu: %w", err)
	}
	ex.Up, ex.Panic, ex.Tail, ex.UpAfter = con.up.Load(), con.panic.Load(), con.tail, con.upAfter
	ex.Elapsed = time.Since(start)
	return ex
}

// console watches the guest's console as it is written to the log.
type console struct {
	start     time.Time
	up, panic atomic.Bool
	tail      []string      // read only after scan returns
	upAfter   time.Duration // likewise
}

func (c *console) scan(r io.Reader, log io.Writer) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		fmt.Fprintln(log, line)
		switch {
		case strings.Contains(line, consoleUp):
			c.upAfter = time.Since(c.start)
			c.up.Store(true)
		case strings.Contains(line, "Kernel panic"):
			c.panic.Store(true)
		}
		if line = strings.TrimSpace(line); line != "" {
			c.tail = append(c.tail, line)
			if len(c.tail) > 15 {
				c.tail = c.tail[1:]
			}
		}
	}
	// A long line or a read error ends the scan; keep draining so that
	// qemu never blocks on a full pipe.
	_, _ = io.Copy(log, r)
}

// kvmUsable says whether KVM is worth trying at all; whether it works is
// only known by booting (on some hosts /dev/kvm opens but guests hang).
func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// problem describes an unsuccessful boot in one line, or "" if it went well.
func (ex vmExit) problem(timeout time.Duration) string {
	last := ""
	if len(ex.Tail) > 0 {
		last = "; console's last line: " + ex.Tail[len(ex.Tail)-1]
	}
	switch {
	case ex.Panic:
		return "kernel panic" + last
	case ex.TimedOut:
		return fmt.Sprintf("hung: no end after %v%s", timeout, last)
	case ex.UpLate:
		return "the guest did not start in time" + last
	case ex.Err != nil:
		return ex.Err.Error() + last
	case !ex.Up:
		return "the guest never started /init" + last
	}
	return ""
}
