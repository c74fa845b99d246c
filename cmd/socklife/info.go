package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/tracer"
)

// kernelInfo is what `socklife info` reports; the JSON keys are its -o json form.
type kernelInfo struct {
	Kernel   string        `json:"kernel"`
	BTF      bool          `json:"btf"`
	Lockdown string        `json:"lockdown"`
	Features []featureInfo `json:"features"`
	Cgroup   cgroupInfo    `json:"cgroup"`
	Runtimes []runtimeInfo `json:"runtimes"`
	// ServeAcceptWait says whether serve measures accepts by default here.
	ServeAcceptWait string `json:"serve_accept_wait"`
	// ServeStates says how serve counts sockets by state here: iter/tcp,
	// or sock_diag and why.
	ServeStates string `json:"serve_states"`
	// lines are the features as HookStatus prints them, for the table.
	lines []string
}

// cgroupInfo is the cgroup layout container attribution reads.
type cgroupInfo struct {
	Layout     string `json:"layout"` // unified, hybrid, legacy, or none
	Mount      string `json:"mount"`  // the cgroup v2 root; "" without one
	Containers int    `json:"containers"`
	// Depth is how far below the hierarchy's root this process's cgroup
	// namespace is rooted: 0 in the host's, more in a container's own.
	Depth int `json:"namespace_depth"`
	// Note says why containers cannot be named, when they cannot.
	Note string `json:"note,omitempty"`
}

// runtimeInfo is one container runtime socket and whether it answered.
type runtimeInfo struct {
	Runtime  string `json:"runtime"` // "" for --runtime-endpoint
	Endpoint string `json:"endpoint"`
	Protocol string `json:"protocol"` // cri or docker; "" when it did not answer
	Name     string `json:"name"`
	Version  string `json:"version"`
	Error    string `json:"error,omitempty"`
}

func (r runtimeInfo) String() string {
	who := r.Runtime
	if who == "" {
		who = "--runtime-endpoint"
	}
	switch {
	case r.Error != "":
		return fmt.Sprintf("%s at %s: %s", who, r.Endpoint, r.Error)
	}
	return fmt.Sprintf("%s at %s: %s %s (%s API)", who, r.Endpoint, r.Name, r.Version, strings.ToUpper(r.Protocol))
}

type featureInfo struct {
	Feature string        `json:"feature"`
	Hook    string        `json:"hook"`   // "none" when the feature is off
	Target  string        `json:"target"` // what the hook attached to
	Failed  []failureInfo `json:"failed"` // better hooks, tried first
}

type failureInfo struct {
	Hook   string `json:"hook"`
	Reason string `json:"reason"`
}

func newInfoCmd() *cobra.Command {
	var format string
	var disable []string
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Print the kernel, BTF and the hook each feature uses",
		Long: `Load socklife's programs as trace would and say, per feature, which hook
this kernel allows and why the better ones failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := render.ParseFormat(format, render.Table, render.JSON)
			if err != nil {
				return badInput("%w", err)
			}
			if err := checkDisableHooks(disable); err != nil {
				return err
			}
			return runInfo(cmd.Context(), cmd.OutOrStdout(), f, disable)
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "table", "output format: table or json")
	cmd.Flags().StringArrayVar(&disable, "disable-hook", nil, "say what is used without this hook (repeatable): "+strings.Join(tracer.HookNames, ", "))
	return cmd
}

func runInfo(ctx context.Context, w io.Writer, format render.Format, disable []string) error {
	info := kernelInfo{Kernel: kernelRelease(), Lockdown: tracer.Lockdown()}
	if info.Lockdown == "" {
		info.Lockdown = "unknown (no /sys/kernel/security/lockdown: securityfs not mounted?)"
	}
	_, err := os.Stat(tracer.BTFPath)
	info.BTF = err == nil
	// Probe first: without the rights to load programs the answer is one
	// error line, not half a report.
	if err := probeHooks(&info, disable); err != nil {
		return err
	}
	info.Cgroup = probeCgroups()
	info.Runtimes = probeRuntimes(ctx)
	out := bufio.NewWriter(w)
	if format == render.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(info); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
	} else {
		btf := "no (" + tracer.BTFPath + " missing)"
		if info.BTF {
			btf = "yes"
		}
		fmt.Fprintf(out, "kernel: %s\nbtf: %s\nlockdown: %s\n", info.Kernel, btf, info.Lockdown)
		fmt.Fprintf(out, "cgroup: %s\n", info.Cgroup)
		for _, r := range info.Runtimes {
			fmt.Fprintf(out, "runtime: %s\n", r)
		}
		for _, l := range info.lines {
			fmt.Fprintln(out, l)
		}
		fmt.Fprintf(out, "serve: accept wait %s\n", info.ServeAcceptWait)
		fmt.Fprintf(out, "serve: socket states by %s\n", info.ServeStates)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}

// probeHooks loads and attaches everything, as trace does, and records the result.
func probeHooks(info *kernelInfo, disable []string) error {
	tr, err := tracer.New(tracer.Options{DisableHooks: disable, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer tr.Close()
	for _, h := range tr.Hooks() {
		f := featureInfo{Feature: string(h.Feature), Hook: "none", Target: h.Target, Failed: []failureInfo{}}
		if h.Attached() {
			f.Hook = h.Hook.String()
		}
		for _, fail := range h.Failed {
			f.Failed = append(f.Failed, failureInfo{Hook: fail.Hook.String(), Reason: tracer.Reason(fail.Err)})
		}
		info.Features = append(info.Features, f)
		info.lines = append(info.lines, h.String())
		if h.Feature == tracer.FeatureAccept {
			info.ServeAcceptWait = serveAcceptDefault(h)
		}
	}
	info.ServeStates = "iter/tcp (a BPF iterator over each namespace's sockets)"
	if c, err := tr.NewCensus(); err != nil {
		info.ServeStates = "sock_diag, a dump of every socket (no BPF iterator: " + tracer.Reason(err) + ")"
	} else {
		c.Close()
	}
	return nil
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// probeCgroups says how this host mounts its cgroups and how many
// containers socklife finds in them now.
func probeCgroups() cgroupInfo {
	h, err := container.FindHierarchy()
	ci := cgroupInfo{Layout: string(h.Layout), Mount: h.Mount, Depth: h.Above}
	if err != nil {
		if ci.Layout == "" {
			ci.Layout = "none"
		}
		ci.Note = "no container attribution: " + err.Error()
		return ci
	}
	res, err := container.NewResolver(h)
	if err != nil {
		ci.Note = "no container attribution: " + err.Error()
		return ci
	}
	defer res.Close()
	ci.Containers = res.Containers(0)
	return ci
}

func (c cgroupInfo) String() string {
	if c.Note != "" {
		return c.Layout + "; " + c.Note
	}
	where := "v2 at " + c.Mount
	if c.Layout == string(container.Hybrid) {
		where += " beside v1 controllers"
	}
	if c.Depth > 0 {
		where += fmt.Sprintf(", seen from a cgroup namespace %d levels below its root", c.Depth)
	}
	return fmt.Sprintf("%s (%s), %d containers now", c.Layout, where, c.Containers)
}

// probeRuntimes asks every container runtime socket socklife would ask for
// names; an absent one says so in a word.
func probeRuntimes(ctx context.Context) []runtimeInfo {
	out := []runtimeInfo{}
	n, err := runtimeNamer()
	if err != nil {
		return out
	}
	for _, st := range n.Probe(ctx) {
		r := runtimeInfo{Runtime: st.Runtime, Endpoint: st.Endpoint, Protocol: st.Protocol, Name: st.Name, Version: st.Version}
		switch {
		case errors.Is(st.Err, fs.ErrNotExist):
			r.Error = "not running (no socket)"
		case st.Err != nil:
			r.Error = st.Err.Error()
		}
		out = append(out, r)
	}
	return out
}
