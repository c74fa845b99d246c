package tracer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Hook is the kernel mechanism a feature is attached with.
type Hook uint8

// The values are enum event_hook of bpf/socklife.h, which events carry.
const (
	HookRawTracepoint     = Hook(socklifeEventHookHOOK_RAW_TRACEPOINT)
	HookTracepoint        = Hook(socklifeEventHookHOOK_TRACEPOINT)
	HookFexit             = Hook(socklifeEventHookHOOK_FEXIT)
	HookKretprobe         = Hook(socklifeEventHookHOOK_KRETPROBE)
	HookSyscallTracepoint = Hook(socklifeEventHookHOOK_SYSCALL_TRACEPOINT)
	HookTPBTF             = Hook(socklifeEventHookHOOK_TP_BTF) // BTF-typed raw tracepoint (libbpf's tp_btf)
)

// String is the mechanism's name as --disable-hook takes it.
func (h Hook) String() string {
	switch h {
	case HookRawTracepoint:
		return "raw_tracepoint"
	case HookTracepoint, HookSyscallTracepoint:
		return "tracepoint"
	case HookFexit:
		return "fexit"
	case HookKretprobe:
		return "kretprobe"
	case HookTPBTF:
		return "tp_btf"
	}
	return "none"
}

// HookNames lists the names Options.DisableHooks accepts. A name turns off
// that mechanism for every feature; "kprobe" is a synonym of "kretprobe".
var HookNames = []string{"fexit", "kprobe", "kretprobe", "tp_btf", "raw_tracepoint", "tracepoint"}

// HookFailure is a rung of a feature's ladder that did not attach, and why.
type HookFailure struct {
	Hook Hook
	Err  error
}

// Feature is one kind of event the tracer attaches a hook ladder for.
type Feature string

const (
	FeatureState  Feature = "state"  // TCP state changes, always on
	FeatureAccept Feature = "accept" // accept() dequeues
	FeatureSynack Feature = "synack" // SYN-ACK retransmits, with Options.Backlog
)

// HookStatus says how one feature is attached on this kernel.
type HookStatus struct {
	Feature Feature
	// Hook is the rung in use; 0 when none attached and the feature is off.
	Hook Hook
	// Target names what Hook attached to, e.g. "sock:inet_sock_set_state".
	Target string
	// Failed lists the better rungs that were tried first, best first.
	Failed []HookFailure
}

// Attached reports whether the feature works.
func (s HookStatus) Attached() bool { return s.Hook != 0 }

// String reads like "accept: syscalls:sys_exit_accept{,4} tracepoint (fexit: EPERM, kretprobe: not supported by kernel)".
func (s HookStatus) String() string {
	var b strings.Builder
	b.WriteString(string(s.Feature) + ": ")
	if s.Attached() {
		fmt.Fprintf(&b, "%s %s", s.Target, s.Hook)
	} else {
		b.WriteString("none")
	}
	if len(s.Failed) > 0 {
		fmt.Fprintf(&b, " (%s)", s.Why())
	}
	return b.String()
}

// Why says why each hook tried before the one in use, or every hook,
// failed: "fexit: EPERM, tracepoint: permission denied on tracefs (...)".
func (s HookStatus) Why() string {
	parts := make([]string, len(s.Failed))
	for i, f := range s.Failed {
		parts[i] = f.Hook.String() + ": " + Reason(f.Err)
	}
	return strings.Join(parts, ", ")
}

// LeftOut reports whether the feature is off because Options.AcceptHooks
// left out the rungs that would have attached, not because the kernel
// refused them all.
func (s HookStatus) LeftOut() bool {
	if s.Attached() {
		return false
	}
	for _, f := range s.Failed {
		if errors.Is(f.Err, errAcceptOff) || errors.Is(f.Err, ErrSlowsEverySyscall) {
			return true
		}
	}
	return false
}

// errDisabled marks a rung turned off by Options.DisableHooks.
var errDisabled = errors.New("disabled")

// AcceptHooks says which rungs of the accept ladder may be used.
type AcceptHooks uint8

const (
	AcceptAny     AcceptHooks = iota // every rung
	AcceptPerCall                    // only hooks that cost per accept(): fexit, kretprobe
	AcceptOff                        // none
)

// ErrSlowsEverySyscall marks the syscall tracepoint rung left out by
// AcceptPerCall: attached, it would put every syscall of every task on
// the slow path, not only accept()s.
var ErrSlowsEverySyscall = errors.New("left out: it would slow every syscall on the host")

// errAcceptOff marks the accept ladder turned off by AcceptOff.
var errAcceptOff = errors.New("off")

// ladder is the accept ladder as a limits it: the rungs left out fail
// with the reason, so that Hooks says why none attached.
func (a AcceptHooks) ladder() []rung {
	if a == AcceptAny {
		return acceptLadder
	}
	out := make([]rung, len(acceptLadder))
	for i, r := range acceptLadder {
		out[i] = r
		switch {
		case a == AcceptOff:
			out[i].refused = errAcceptOff
		case r.hook == HookSyscallTracepoint:
			out[i].refused = ErrSlowsEverySyscall
		}
	}
	return out
}

// Reason shortens a load or attach error to what a user acts on.
func Reason(err error) string {
	switch {
	case errors.Is(err, errAcceptOff), errors.Is(err, ErrSlowsEverySyscall):
		return err.Error()
	case errors.Is(err, errDisabled):
		return "disabled"
	case errors.Is(err, unix.EPERM):
		return "EPERM"
	case errors.Is(err, ebpf.ErrNotSupported):
		return "not supported by kernel"
	case errors.Is(err, os.ErrNotExist):
		return "not found"
	}
	// With CAP_BPF and CAP_PERFMON but not root, tracepoints fail on
	// tracefs's permissions: say that, not "no hook on this kernel".
	var pe *fs.PathError
	if errors.As(err, &pe) && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) {
		where := pe.Path
		for _, dir := range []string{tracefsDir, "/sys/kernel/debug/tracing"} {
			if strings.HasPrefix(pe.Path, dir+"/") {
				where = "tracefs (" + pe.Path + ": readable by root only)"
			}
		}
		return "permission denied on " + where
	}
	return err.Error()
}

// rung is one way to attach a feature: the programs it loads and how they
// are attached once loaded.
type rung struct {
	hook     Hook
	target   string
	programs []string
	attach   func(progs map[string]*ebpf.Program) ([]link.Link, error)
	// pick, when set, chooses the programs for this kernel instead.
	pick func(l loader) ([]string, error)
	// refused, when set, is why this rung is not tried (AcceptHooks).
	refused error
}

// stateLadder, cheapest first (BenchmarkStateHook here, medians of 7
// interleaved rounds: 396 ns per run for tp_btf, 409 for the tracepoint, 589
// for the raw tracepoint; connection time 1.057x and 1.030x tp_btf's). The
// BTF-typed raw tracepoint (5.5+) reads the sock with plain loads; the
// tracepoint has the kernel copy a record before the program runs and needs
// tracefs; the raw tracepoint needs a helper call per field but works
// without BTF-typed programs.
var stateLadder = []rung{
	{HookTPBTF, "sock:inet_sock_set_state", []string{socklifeProgBtfState}, attachTracing, nil, nil},
	{HookTracepoint, "sock:inet_sock_set_state", []string{socklifeProgTpState}, attachTracepoints("sock", "inet_sock_set_state", socklifeProgTpState), nil, nil},
	{HookRawTracepoint, "sock:inet_sock_set_state", []string{socklifeProgRawState}, attachRawTracepoint("inet_sock_set_state", socklifeProgRawState), nil, nil},
}

var acceptLadder = []rung{
	{HookFexit, "inet_csk_accept", nil, attachTracing, fexitProgram, nil},
	{HookKretprobe, "inet_csk_accept", []string{socklifeProgKprobeAccept, socklifeProgKretprobeAccept}, attachKretprobe, nil, nil},
	{HookSyscallTracepoint, "syscalls:sys_exit_accept{,4}", nil, attachSyscalls, syscallPrograms, nil},
}

// synackLadder: SYN-ACK retransmits by listeners, for backlog accounting
// only (Options.Backlog). The raw tracepoint first: it needs no tracefs and
// the program reads little either way.
var synackLadder = []rung{
	{HookRawTracepoint, "tcp:tcp_retransmit_synack", []string{socklifeProgRawSynack}, attachRawTracepoint("tcp_retransmit_synack", socklifeProgRawSynack), nil, nil},
	{HookTracepoint, "tcp:tcp_retransmit_synack", []string{socklifeProgTpSynack}, attachTracepoints("tcp", "tcp_retransmit_synack", socklifeProgTpSynack), nil, nil},
}

// attachTracing attaches the one tracing program loaded (fexit, tp_btf):
// its target is named in its section, and the kernel resolved it at load.
func attachTracing(progs map[string]*ebpf.Program) ([]link.Link, error) {
	for _, p := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			return nil, err
		}
		return []link.Link{l}, nil
	}
	return nil, errors.New("no tracing program loaded")
}

// attachRawTracepoint attaches program prog to raw tracepoint tp.
func attachRawTracepoint(tp, prog string) func(map[string]*ebpf.Program) ([]link.Link, error) {
	return func(progs map[string]*ebpf.Program) ([]link.Link, error) {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp, Program: progs[prog]})
		if err != nil {
			return nil, err
		}
		return []link.Link{l}, nil
	}
}

// fexitProgram picks the fexit program for this kernel's inet_csk_accept:
// fexit reads the return value after the last argument.
func fexitProgram(loader) ([]string, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("reading kernel BTF: %w", err)
	}
	var fn *btf.Func
	if err := spec.TypeByName("inet_csk_accept", &fn); err != nil {
		return nil, fmt.Errorf("inet_csk_accept in kernel BTF: %w", err)
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return nil, fmt.Errorf("inet_csk_accept has no prototype in kernel BTF")
	}
	switch len(proto.Params) {
	case 2: // (sk, struct proto_accept_arg *), 6.10+
		return []string{socklifeProgFexitAccept}, nil
	case 4: // (sk, flags, err, kern)
		return []string{socklifeProgFexitAcceptPre610}, nil
	}
	return nil, fmt.Errorf("inet_csk_accept takes %d arguments, expected 2 or 4", len(proto.Params))
}

// kretprobeMaxActive: every thread blocked in accept() holds a kretprobe
// instance until it returns; servers park thousands of threads there.
const kretprobeMaxActive = 4096

func attachKretprobe(progs map[string]*ebpf.Program) ([]link.Link, error) {
	if !kprobesAvailable() {
		// Without this the error is tracefs's ENOENT for kprobe_events.
		return nil, fmt.Errorf("kprobes: %w", ebpf.ErrNotSupported)
	}
	entry, err := link.Kprobe("inet_csk_accept", progs[socklifeProgKprobeAccept], nil)
	if err != nil {
		return nil, err
	}
	ret, err := link.Kretprobe("inet_csk_accept", progs[socklifeProgKretprobeAccept],
		&link.KprobeOptions{RetprobeMaxActive: kretprobeMaxActive})
	if err != nil {
		entry.Close()
		return nil, err
	}
	return []link.Link{entry, ret}, nil
}

// kprobesAvailable: a kernel built without CONFIG_KPROBES has neither the
// perf PMU nor the tracefs file.
func kprobesAvailable() bool {
	for _, p := range []string{"/sys/bus/event_source/devices/kprobe/type", tracefsDir + "/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// attachTracepoints attaches one program to one or more tracepoints of a group.
func attachTracepoints(group, names, prog string) func(map[string]*ebpf.Program) ([]link.Link, error) {
	return func(progs map[string]*ebpf.Program) ([]link.Link, error) {
		if _, err := ensureTracefs(); err != nil {
			return nil, err
		}
		var links []link.Link
		for _, name := range strings.Split(names, ",") {
			l, err := link.Tracepoint(group, name, progs[prog], nil)
			if err != nil {
				closeLinks(links)
				return nil, fmt.Errorf("attaching %s:%s: %w", group, name, err)
			}
			links = append(links, l)
		}
		return links, nil
	}
}

// syscallPrograms: since 5.15 the exit alone does it, reading the listener's
// fd from the task's saved registers (bpf_task_pt_regs); before, the entry
// remembers the listener for the exit.
func syscallPrograms(l loader) ([]string, error) {
	if !l.syscallEntry && features.HaveProgramHelper(ebpf.TracePoint, asm.FnTaskPtRegs) == nil {
		return []string{socklifeProgSysExitAcceptRegs}, nil
	}
	return []string{socklifeProgSysEnterAccept, socklifeProgSysExitAccept}, nil
}

func attachSyscalls(progs map[string]*ebpf.Program) ([]link.Link, error) {
	var links []link.Link
	if _, ok := progs[socklifeProgSysEnterAccept]; ok {
		enter, err := attachTracepoints("syscalls", "sys_enter_accept,sys_enter_accept4", socklifeProgSysEnterAccept)(progs)
		if err != nil {
			return nil, err
		}
		links = enter
	}
	exit := socklifeProgSysExitAccept
	if _, ok := progs[socklifeProgSysExitAcceptRegs]; ok {
		exit = socklifeProgSysExitAcceptRegs
	}
	l, err := attachTracepoints("syscalls", "sys_exit_accept,sys_exit_accept4", exit)(progs)
	if err != nil {
		closeLinks(links)
		return nil, err
	}
	return append(links, l...), nil
}

func closeLinks(links []link.Link) {
	for _, l := range links {
		l.Close()
	}
}

// disabled reports whether opts turn hook h off.
func disabled(names []string, h Hook) bool {
	if slices.Contains(names, h.String()) {
		return true
	}
	return h == HookKretprobe && slices.Contains(names, "kprobe")
}

// CheckHookNames rejects a name HookNames does not list, naming the valid ones.
func CheckHookNames(names []string) error {
	for _, n := range names {
		if !slices.Contains(HookNames, n) {
			return fmt.Errorf("unknown hook %q (valid: %s)", n, strings.Join(HookNames, ", "))
		}
	}
	return nil
}
