package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// runner holds what every kernel's VM shares: the built binaries staged
// into one directory, and what has been learnt about KVM.
type runner struct {
	o        options
	m        *Matrix
	cache    string
	apt      *privateApt
	work     string    // this run's scratch directory, removed at the end
	stage    string    // the initramfs staging directory, in work
	pkgs     []testPkg // built
	buildErr []string  // packages whose test binary did not build
	kvm      string    // "": not tried yet, "ok" or "no"
}

func newRunner(ctx context.Context, o options, m *Matrix, cache string, apt *privateApt) (*runner, error) {
	if err := os.RemoveAll(o.out); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	// Per run, so that runs in parallel (one kernel each, say) do not
	// overwrite each other's initramfs.
	work, err := os.MkdirTemp(cache, "run-")
	if err != nil {
		return nil, err
	}
	// The staging root becomes the guest's /: tests that drop root must
	// still be able to walk it.
	stage := filepath.Join(work, "root")
	if err := os.Mkdir(stage, 0o755); err != nil {
		os.RemoveAll(work)
		return nil, err
	}
	r := &runner{o: o, m: m, cache: cache, apt: apt, work: work, stage: stage}
	if err := r.build(ctx); err != nil {
		r.cleanup()
		return nil, err
	}
	return r, nil
}

func (r *runner) cleanup() { os.RemoveAll(r.work) }

// build compiles the test binaries and socklife and stages them with busybox and ss.
func (r *runner) build(ctx context.Context) error {
	modRoot, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	all, err := listTestPkgs(ctx, modRoot, strings.Fields(r.o.pkgs))
	if err != nil {
		return err
	}
	busybox, err := whichStatic("busybox")
	if err != nil {
		return err
	}
	// iproute2's ss: the oracle of the snapshot tests.
	ss, err := exec.LookPath("ss")
	if err != nil {
		return err
	}
	if err := stageCommon(ctx, r.stage, busybox, ss); err != nil {
		return fmt.Errorf("staging the initramfs: %w", err)
	}
	logf("building socklife and %d test binaries (CGO_ENABLED=0)", len(all))
	if err := buildSocklife(ctx, modRoot, filepath.Join(r.stage, "bin", "socklife")); err != nil {
		return fmt.Errorf("building socklife for the CLI tests: %w", err)
	}
	if err := stageTestdata(modRoot, filepath.Join(r.stage, "src")); err != nil {
		return err
	}
	// Tests check what they write against the documented schemas (docs/).
	if err := stageDir(modRoot, filepath.Join(r.stage, "src"), "docs"); err != nil {
		return err
	}
	for _, p := range all {
		dir := filepath.Join(r.stage, "src", p.Rel)
		if err := buildTest(ctx, modRoot, p, dir); err != nil {
			logf("%v", err)
			r.buildErr = append(r.buildErr, p.Rel)
			continue
		}
		if err := stageTestdata(p.Dir, dir); err != nil {
			return fmt.Errorf("staging %s's testdata: %w", p.Rel, err)
		}
		r.pkgs = append(r.pkgs, p)
	}
	return nil
}

// runKernel fetches, boots and tests one kernel; every failure ends up
// in the result, so that the other kernels still run.
func (r *runner) runKernel(ctx context.Context, k Kernel) KernelResult {
	kr := KernelResult{Kernel: k.Name, Package: k.Package, BuildErr: r.buildErr}
	start := time.Now()
	deb, pkg, err := r.apt.fetchDeb(ctx, filepath.Join(r.cache, "debs"), k.Package, r.o.newestIfGone)
	var initrd, vmlinuz string
	if err == nil {
		if pkg != k.Package {
			logf("%s: WARNING: %s is gone from the archive; testing %s, the newest of its series (bump internal/cmd/vmtest/kernels.txt)",
				k.Name, k.Package, pkg)
			kr.Package = pkg
		}
		initrd, vmlinuz, err = r.prepare(ctx, k.Name, deb, pkg)
	}
	if err != nil {
		kr.Problem = err.Error()
		logf("%s: %v", k.Name, err)
		return kr
	}
	spec := vmSpec{
		Kernel: vmlinuz, Initrd: initrd,
		ConsoleLog:  filepath.Join(r.o.out, k.Name+".console.log"),
		ResultsFile: filepath.Join(r.o.out, k.Name+".tests.log"),
		MemMB:       r.o.memMB, CPUs: cmp.Or(r.o.cpus, 2), Timeout: r.o.timeout,
	}
	ex := r.boot(ctx, k, spec)
	kr.Accel, kr.Boot = ex.Accel, ex.UpAfter
	kr.Elapsed = time.Since(start)
	kr.Problem = ex.problem(r.o.timeout)
	if f, err := os.Open(spec.ResultsFile); err == nil {
		kr.Output = parseVMOutput(f)
		f.Close()
	}
	if kr.Problem == "" && !kr.Output.Done {
		kr.Problem = "/init stopped before the end of the runs"
	}
	for i := range kr.Output.Pkgs {
		p := &kr.Output.Pkgs[i]
		checkHooks(p, r.runNamed(p.Run).ExpectHook())
	}
	logf("%s: %s under %s: /init after %.1fs, power-off after %.1fs (with fetch and initramfs %.1fs)%s",
		k.Name, kr.Output.Release, kr.Accel, ex.UpAfter.Seconds(), ex.Elapsed.Seconds(), kr.Elapsed.Seconds(), problemSuffix(kr.Problem))
	return kr
}

func problemSuffix(p string) string {
	if p == "" {
		return ""
	}
	return ": " + p
}

func (r *runner) runNamed(name string) Run {
	for _, run := range r.m.Runs {
		if run.Name == name {
			return run
		}
	}
	return Run{}
}

// prepare unpacks the kernel package deb, stages its modules and /init and
// writes the initramfs of the kernel called name.
func (r *runner) prepare(ctx context.Context, name, deb, pkg string) (initrd, vmlinuz string, err error) {
	ek, err := extract(ctx, deb, filepath.Join(r.cache, "kernels", pkg))
	if err != nil {
		return "", "", err
	}
	modDir := filepath.Join(r.stage, "modules")
	if err := os.RemoveAll(modDir); err != nil {
		return "", "", err
	}
	order, err := stageModules(ctx, ek.ModulesDir, r.m.Modules, modDir)
	if err != nil {
		return "", "", fmt.Errorf("staging modules: %w", err)
	}
	script, err := renderInit(initParams{Modules: order, Runs: r.m.Runs, Pkgs: r.pkgs, TestTimeout: r.o.testTimeout, TestRun: r.o.run})
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(r.stage, "init"), []byte(script), 0o755); err != nil {
		return "", "", err
	}
	initrd = filepath.Join(r.work, name+".cpio")
	if err := writeCpio(ctx, r.stage, initrd); err != nil {
		return "", "", err
	}
	return initrd, ek.Vmlinuz, nil
}

// boot picks the accelerator: KVM when it is there and boots, else TCG.
// Some hosts (this project's development VM among them) have a /dev/kvm
// whose guests abort or hang, so the first KVM boot must show /init
// starting within a short time, or KVM is dropped for the rest of the run.
func (r *runner) boot(ctx context.Context, k Kernel, spec vmSpec) vmExit {
	tryKVM := r.o.accel == "kvm" || (r.o.accel == "auto" && r.kvm != "no" && kvmUsable())
	if tryKVM {
		spec.Accel = "kvm"
		if r.o.accel == "auto" && r.kvm == "" {
			spec.UpTimeout = 30 * time.Second
		}
		ex := bootVM(ctx, spec)
		if r.o.accel == "kvm" || ex.Up {
			r.kvm = "ok"
			return ex
		}
		r.kvm = "no"
		logf("%s: KVM does not work here (%s); falling back to TCG", k.Name, ex.problem(spec.UpTimeout))
	}
	spec.Accel, spec.UpTimeout = "tcg", 0
	if r.o.cpus == 0 {
		// One vCPU under TCG. Attaching syscall tracepoints and kprobes
		// patches kernel text with int3 across CPUs, and under multi-
		// threaded TCG that soft-locked 5.10 and once crashed 6.12 on
		// this 2-core host; one vCPU also runs the suite faster here, as
		// a second one only competes for the same host cores.
		spec.CPUs = 1
	}
	return bootVM(ctx, spec)
}

// report prints the table and a summary, writes results.json, and fails
// if anything failed.
func (r *runner) report(results []KernelResult) error {
	table := newResultTable(results, r.m.Runs)
	fmt.Println()
	if err := table.write(os.Stdout); err != nil {
		return err
	}
	for _, kr := range results {
		if kr.Problem != "" {
			fmt.Printf("\n%s (vm): %s", kr.Kernel, kr.Problem)
		}
	}
	n := table.counts()
	fmt.Printf("\n%d passed, %d failed, %d skipped", n[Pass], n[Fail], n[Skip])
	for _, kr := range results {
		fmt.Printf("; %s %s %.0fs", kr.Kernel, kr.Accel, kr.Elapsed.Seconds())
	}
	fmt.Printf("\nlogs: %s\n", r.o.out)
	js, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.o.out, "results.json"), js, 0o644); err != nil {
		return err
	}
	if n[Fail] > 0 {
		return errFailed
	}
	return nil
}
