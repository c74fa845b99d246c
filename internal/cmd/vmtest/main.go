// Command vmtest runs socklife's privileged tests inside Debian kernels
// booted under QEMU: the kernel matrix of kernels.txt (5.10, 6.1, 6.12).
//
//	go run ./internal/cmd/vmtest                 # every kernel
//	go run ./internal/cmd/vmtest -kernel 6.1     # one kernel
//
// For each kernel it fetches the pinned package with apt-get (from a private
// apt state, cached), builds a busybox initramfs holding the static test
// binaries, boots it (KVM when it works, TCG otherwise), runs each binary
// once per run of kernels.txt, and prints a table of test × kernel/run:
//
//	TEST                      5.10/fexit  5.10/kretprobe  6.1/fexit  ...
//	tracer TestAcceptHook     pass fexit  pass kretprobe  pass fexit ...
//	snapshot TestDumpTCP      pass        pass            pass       ...
//
// It exits 1 if anything failed, 2 on bad input. Full logs go to -out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type options struct {
	kernels     string
	accel       string
	out         string
	pkgs        string
	run         string
	timeout     time.Duration
	testTimeout time.Duration
	memMB, cpus int
	candidates  bool
	// newestIfGone boots the newest kernel of a series whose pinned
	// package the archive no longer has, instead of failing.
	newestIfGone bool
}

// errFailed reports test failures already shown in the table.
var errFailed = errors.New("some tests failed")

// usageError is bad input: exit status 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errFailed):
		os.Exit(1)
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("vmtest", flag.ContinueOnError)
	fs.StringVar(&o.kernels, "kernel", "", "comma-separated kernels of kernels.txt to run (default all)")
	fs.StringVar(&o.accel, "accel", "auto", "auto (KVM if it boots, else TCG), kvm or tcg")
	fs.StringVar(&o.out, "out", "", "directory for logs and results.json (default <cache>/out)")
	fs.StringVar(&o.pkgs, "pkgs", "./... ./internal/cmd/vmtest/testdata/vmenv", "space-separated packages whose tests run in the VMs")
	fs.StringVar(&o.run, "run", "", "only run tests matching this regexp (-test.run)")
	fs.DurationVar(&o.timeout, "timeout", 45*time.Minute, "limit for one VM, boot to power-off (a loaded 2-core host has taken 20 minutes under TCG, a third of that unloaded)")
	// cmd/socklife's binary runs 100 s in a 6.1 VM under TCG on an idle
	// host and was cut off at 5 minutes on a CI host three times slower.
	fs.DurationVar(&o.testTimeout, "test-timeout", 15*time.Minute, "limit for one test binary (-test.timeout)")
	fs.IntVar(&o.memMB, "mem", 2048, "guest memory in MiB")
	fs.IntVar(&o.cpus, "smp", 0, "guest CPUs (default: 2 under KVM, 1 under TCG)")
	fs.BoolVar(&o.candidates, "candidates", false, "print the newest package of each kernel's series and exit")
	fs.BoolVar(&o.newestIfGone, "newest-if-gone", false, "when a pinned kernel package is gone from the archive, test the newest of its series (with a warning)")
	// A bad flag gets the one-line error from main, not the whole usage.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.Usage()
		}
		return o, usageError{err}
	}
	if fs.NArg() > 0 {
		return o, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	switch o.accel {
	case "auto", "kvm", "tcg":
	default:
		return o, usageError{fmt.Errorf("-accel %q: want auto, kvm or tcg", o.accel)}
	}
	return o, nil
}

func run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	m, err := parseMatrix(strings.NewReader(matrixFile))
	if err != nil {
		return fmt.Errorf("reading kernels.txt: %w", err)
	}
	kernels, err := m.selectKernels(o.kernels)
	if err != nil {
		return usageError{err}
	}
	cache, err := cacheRoot()
	if err != nil {
		return err
	}
	if err := ensureTools(ctx); err != nil {
		return err
	}
	apt := &privateApt{dir: filepath.Join(cache, "apt"), sources: m.Sources}
	if o.candidates {
		return printCandidates(ctx, apt, kernels)
	}
	if o.out == "" {
		o.out = filepath.Join(cache, "out")
	}
	r, err := newRunner(ctx, o, m, cache, apt)
	if err != nil {
		return err
	}
	defer r.cleanup()
	var results []KernelResult
	for _, k := range kernels {
		results = append(results, r.runKernel(ctx, k))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return r.report(results)
}

func printCandidates(ctx context.Context, apt *privateApt, kernels []Kernel) error {
	for _, k := range kernels {
		newest, err := apt.newest(ctx, k.Package)
		if err != nil {
			return err
		}
		mark := "(pinned, newest)"
		if newest != k.Package {
			mark = "(newer than the pinned " + k.Package + ")"
		}
		fmt.Printf("%-5s %s %s\n", k.Name, newest, mark)
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vmtest: "+format+"\n", args...)
}
