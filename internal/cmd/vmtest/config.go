package main

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"slices"
	"strings"
)

// matrixFile is kernels.txt: the one place kernels are pinned.
//
//go:embed kernels.txt
var matrixFile string

// expectHookEnv names the hook a run expects the accept feature to use; the
// tracer tests assert it, and the runner checks it again against their logs.
const expectHookEnv = "SOCKLIFE_TEST_EXPECT_ACCEPT_HOOK"

// Kernel is one Debian kernel of the matrix.
type Kernel struct {
	Name    string // short name used on the command line and in the table: "6.1"
	Package string // pinned package: "linux-image-6.1.0-56-amd64"
}

// Run is one pass of the test binaries inside each VM.
type Run struct {
	Name string
	Env  []string // VAR=VALUE
}

// ExpectHook is the accept hook this run's tests must report, or "".
func (r Run) ExpectHook() string {
	for _, kv := range r.Env {
		if v, ok := strings.CutPrefix(kv, expectHookEnv+"="); ok {
			return v
		}
	}
	return ""
}

// Matrix is the parsed kernels.txt.
type Matrix struct {
	Kernels []Kernel
	Sources []string // apt sources.list lines
	Modules []string
	Runs    []Run
}

func parseMatrix(r io.Reader) (*Matrix, error) {
	m := &Matrix{}
	sc := bufio.NewScanner(r)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := m.parseLine(line); err != nil {
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(m.Kernels) == 0 || len(m.Sources) == 0 || len(m.Runs) == 0 {
		return nil, fmt.Errorf("need at least one kernel, source and run line")
	}
	return m, nil
}

func (m *Matrix) parseLine(line string) error {
	keyword, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	fields := strings.Fields(rest)
	switch keyword {
	case "kernel":
		if len(fields) != 2 {
			return fmt.Errorf("want \"kernel NAME PACKAGE\", got %q", line)
		}
		if m.kernel(fields[0]) != nil {
			return fmt.Errorf("kernel %s listed twice", fields[0])
		}
		m.Kernels = append(m.Kernels, Kernel{Name: fields[0], Package: fields[1]})
	case "source":
		if !strings.HasPrefix(rest, "deb ") {
			return fmt.Errorf("want \"source deb ...\", got %q", line)
		}
		m.Sources = append(m.Sources, rest)
	case "module":
		if len(fields) == 0 {
			return fmt.Errorf("module line names no module")
		}
		m.Modules = append(m.Modules, fields...)
	case "run":
		if len(fields) == 0 {
			return fmt.Errorf("run line has no name")
		}
		for _, kv := range fields[1:] {
			if !strings.Contains(kv, "=") {
				return fmt.Errorf("run %s: %q is not VAR=VALUE", fields[0], kv)
			}
		}
		m.Runs = append(m.Runs, Run{Name: fields[0], Env: fields[1:]})
	default:
		return fmt.Errorf("unknown keyword %q", keyword)
	}
	return nil
}

func (m *Matrix) kernel(name string) *Kernel {
	i := slices.IndexFunc(m.Kernels, func(k Kernel) bool { return k.Name == name })
	if i < 0 {
		return nil
	}
	return &m.Kernels[i]
}

// selectKernels narrows the matrix to a comma-separated list of kernel
// names; "" keeps them all.
func (m *Matrix) selectKernels(list string) ([]Kernel, error) {
	if list == "" {
		return m.Kernels, nil
	}
	var out []Kernel
	for name := range strings.SplitSeq(list, ",") {
		k := m.kernel(strings.TrimSpace(name))
		if k == nil {
			return nil, fmt.Errorf("unknown kernel %q (the matrix has %s)", name, strings.Join(m.kernelNames(), ", "))
		}
		out = append(out, *k)
	}
	return out, nil
}

func (m *Matrix) kernelNames() []string {
	var names []string
	for _, k := range m.Kernels {
		names = append(names, k.Name)
	}
	return names
}
