package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/socklife/socklife/internal/container"
	"github.com/socklife/socklife/internal/render"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/socklife/socklife/tracer"
)

// kernelInfo is what `socklife info` reports; the JSON keys are its -o json form.
type kernelInfo struct {
	Kernel   string        `json:"kernel"`
	BTF      bool          `json:"btf"`
	Lockdown string        `json:"lockdown"`
	Features []featureInfo `json:"features"`
	Cgroup   cgroupInfo    `json:"cgroup"`
	// lines are the features as HookStatus prints them, for the table.
	lines []string
}

// cgroupInfo is the cgroup layout container attribution reads.
type cgroupInfo struct {
	Layout     string `json:"layout"` // unified, hybrid, legacy, or none
	Mount      string `json:"mount"`  // the cgroup v2 root; "" without one
	Containers int    `json:"containers"`
	// Note says why containers cannot be named, when they cannot.
	Note string `json:"note,omitempty"`
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
			return runInfo(cmd.OutOrStdout(), f, disable)
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "table", "output format: table or json")
	cmd.Flags().StringArrayVar(&disable, "disable-hook", nil, "say what is used without this hook (repeatable): "+strings.Join(tracer.HookNames, ", "))
	return cmd
}

func runInfo(w io.Writer, format render.Format, disable []string) error {
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
		for _, l := range info.lines {
			fmt.Fprintln(out, l)
		}
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
	ci := cgroupInfo{Layout: string(h.Layout), Mount: h.Mount}
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
	return fmt.Sprintf("%s (%s), %d containers now", c.Layout, where, c.Containers)
}
