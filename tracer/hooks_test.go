package tracer

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/testutil"
)

func hookStatus(hooks []HookStatus, feature Feature) HookStatus {
	for _, h := range hooks {
		if h.Feature == feature {
			return h
		}
	}
	return HookStatus{}
}

// The ladder keeps the best rung that attaches and says why the better ones
// did not; disabling a mechanism moves each feature down a rung.
func TestHookLadder(t *testing.T) {
	testutil.RequireRoot(t)
	acceptRungs := []string{"fexit", "kretprobe", "tracepoint"}
	for _, tc := range []struct {
		name      string
		disable   []string
		state     string // hook wanted for state changes
		accept    string // hook wanted for accept, "" for what the environment expects
		acceptOff bool
	}{
		{name: "defaults", state: "tp_btf"},
		{name: "no raw tracepoint", disable: []string{"raw_tracepoint"}, state: "tp_btf"},
		{name: "only tracepoints for accept", disable: []string{"fexit", "kprobe"}, state: "tp_btf", accept: "tracepoint"},
		{name: "no tp_btf", disable: []string{"tp_btf"}, state: "tracepoint"},
		{name: "no tracepoints", disable: []string{"tracepoint"}, state: "tp_btf", acceptOff: expectedAcceptHook() == "tracepoint"},
		{name: "raw tracepoint last", disable: []string{"tp_btf", "tracepoint"}, state: "raw_tracepoint", acceptOff: expectedAcceptHook() == "tracepoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disable := append(envDisabledHooks(), tc.disable...)
			wantState := ""
			for _, h := range []string{"tp_btf", "tracepoint", "raw_tracepoint"} {
				if !slices.Contains(disable, h) {
					wantState = h
					break
				}
			}
			if wantState == "" {
				return // the matrix runner's own choice leaves no state hook to test here
			}
			var logs bytes.Buffer
			tr, err := New(Options{DisableHooks: disable, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if wantState != tc.state && len(envDisabledHooks()) == 0 {
				t.Fatalf("test case wants state hook %s, the ladder order %s", tc.state, wantState)
			}
			st := hookStatus(tr.Hooks(), "state")
			if st.Hook.String() != wantState || st.Target != "sock:inet_sock_set_state" {
				t.Errorf("state: %s, want %s", st, wantState)
			}
			acc := hookStatus(tr.Hooks(), "accept")
			if tc.acceptOff {
				if acc.Attached() || len(acc.Failed) != 3 || !strings.Contains(logs.String(), "accept events off: accept: none (") {
					t.Errorf("accept: %s, logged %q; want none, with a warning", acc, logs.String())
				}
				return
			}
			want := tc.accept
			if want == "" {
				want = expectedAcceptHook()
			}
			if acc.Hook.String() != want {
				t.Errorf("accept: %s, want %s", acc, want)
			}
			// every better rung is listed, best first, with its reason
			for i, f := range acc.Failed {
				if i >= len(acceptRungs) || f.Hook.String() != acceptRungs[i] || Reason(f.Err) == "" {
					t.Errorf("accept rung %d: %s: %v", i, f.Hook, f.Err)
				}
			}
			if logs.Len() != 0 {
				t.Errorf("warnings with every feature attached: %s", logs.String())
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{DisableHooks: []string{"tp_btf", "raw_tracepoint", "tracepoint"}}, "no hook for TCP state changes: state: none (tp_btf: disabled, tracepoint: disabled, raw_tracepoint: disabled)"},
		{Options{DisableHooks: []string{"uprobe"}}, `unknown hook "uprobe"`},
		{Options{IPv4Only: true, IPv6Only: true}, "exclude each other"},
		{Options{RingSize: 3000}, "not a power of two"},
	} {
		if tr, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) error %v, want %q", tc.opts, err, tc.want)
			if tr != nil {
				tr.Close()
			}
		}
	}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errDisabled, "disabled"},
		{fmt.Errorf("loading fexit_accept: %w", unix.EPERM), "EPERM"},
		{fmt.Errorf("kprobes: %w", ebpf.ErrNotSupported), "not supported by kernel"},
		{fmt.Errorf("attaching: %w", os.ErrNotExist), "not found"},
		{errors.New("other: thing"), "other: thing"},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
