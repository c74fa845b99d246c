package tracer

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// loader loads rungs one at a time against maps that already exist, so a
// program the kernel refuses costs only its own rung.
type loader struct {
	spec       *ebpf.CollectionSpec
	maps       map[string]*ebpf.Map
	cache      *btf.Cache
	tracefsErr error
	disabled   []string
	log        *slog.Logger
	// syscallEntry: hook the accept syscalls' entry too, as before 5.15
	syscallEntry bool
}

// climb tries a feature's rungs best first and keeps the first that attaches.
func (l loader) climb(feature Feature, ladder []rung) (HookStatus, []*ebpf.Collection, []link.Link) {
	st := HookStatus{Feature: feature}
	for _, r := range ladder {
		coll, links, err := l.try(r)
		if err != nil {
			l.log.Debug("hook not attached", "feature", feature, "hook", r.hook.String(), "error", verbose(err))
			st.Failed = append(st.Failed, HookFailure{Hook: r.hook, Err: err})
			continue
		}
		st.Hook, st.Target = r.hook, r.target
		l.log.Debug("hook attached", "feature", feature, "hook", r.hook.String(), "target", r.target)
		return st, []*ebpf.Collection{coll}, links
	}
	return st, nil, nil
}

func (l loader) try(r rung) (*ebpf.Collection, []link.Link, error) {
	if r.refused != nil {
		return nil, nil, r.refused
	}
	if disabled(l.disabled, r.hook) {
		return nil, nil, errDisabled
	}
	if (r.hook == HookTracepoint || r.hook == HookSyscallTracepoint) && l.tracefsErr != nil {
		return nil, nil, l.tracefsErr
	}
	names := r.programs
	if r.pick != nil {
		var err error
		if names, err = r.pick(l); err != nil {
			return nil, nil, err
		}
	}
	progs := make(map[string]*ebpf.ProgramSpec, len(names))
	for _, name := range names {
		ps, ok := l.spec.Programs[name]
		if !ok {
			return nil, nil, fmt.Errorf("BPF object has no program %s", name)
		}
		progs[name] = ps
	}
	one := &ebpf.CollectionSpec{
		Maps: l.spec.Maps, Programs: progs, Variables: l.spec.Variables,
		Types: l.spec.Types, ByteOrder: l.spec.ByteOrder,
	}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{MapReplacements: l.maps, Cache: l.cache})
	if err != nil {
		return nil, nil, fmt.Errorf("loading %s: %w", strings.Join(names, ", "), err)
	}
	links, err := r.attach(coll.Programs)
	if err != nil {
		coll.Close()
		return nil, nil, fmt.Errorf("attaching %s: %w", r.target, err)
	}
	return coll, links, nil
}

// verbose renders a verifier error whole: its last line alone rarely says why.
func verbose(err error) string {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Sprintf("%+v", ve)
	}
	return err.Error()
}
