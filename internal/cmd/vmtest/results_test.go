package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseVMOutput(t *testing.T) {
	f, err := os.Open("testdata/tests.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := parseVMOutput(f)
	want := VMOutput{
		Release:      "6.12.117+deb12-amd64",
		ModuleFailed: []string{"raw_diag"},
		Done:         false,
		Pkgs: []PkgRun{
			{Run: "fexit", Pkg: "tracer", Exit: 1, Tests: []TestResult{
				{Name: "TestAccept", Status: Pass, Hook: "fexit"},
				{Name: "TestAccept/ipv6", Status: Pass},
				{Name: "TestParallelA", Status: Pass, Hook: "kretprobe"},
				{Name: "TestParallelB", Status: Fail, Hook: "fexit"},
				{Name: "TestSkipped", Status: Skip},
			}},
			{Run: "fexit", Pkg: "cmd/socklife", Exit: 2, Tests: []TestResult{
				{Name: "TestVersion", Status: Pass},
				{Name: "TestHangs", Status: Fail, Note: "no result: the binary stopped while it ran"},
			}},
			// The VM died inside this binary: no END marker.
			{Run: "kretprobe", Pkg: "snapshot", Exit: -1, Tests: []TestResult{
				{Name: "TestDump", Status: Fail, Note: "no result: the binary stopped while it ran"},
			}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseVMOutput:\n got %+v\nwant %+v", got, want)
	}
}

func TestCheckHooks(t *testing.T) {
	p := PkgRun{Tests: []TestResult{
		{Name: "TestRight", Status: Pass, Hook: "fexit"},
		{Name: "TestFellBack", Status: Pass, Hook: "kretprobe"},
		{Name: "TestNoHook", Status: Pass},
		{Name: "TestAlreadyFailed", Status: Fail, Hook: "tracepoint"},
	}}
	checkHooks(&p, "fexit")
	want := []TestResult{
		{Name: "TestRight", Status: Pass, Hook: "fexit"},
		{Name: "TestFellBack", Status: Fail, Hook: "kretprobe", Note: "accept ran on kretprobe, want fexit"},
		{Name: "TestNoHook", Status: Pass},
		{Name: "TestAlreadyFailed", Status: Fail, Hook: "tracepoint"},
	}
	if !reflect.DeepEqual(p.Tests, want) {
		t.Errorf("checkHooks:\n got %+v\nwant %+v", p.Tests, want)
	}
}

func TestResultTable(t *testing.T) {
	runs := []Run{{Name: "fexit"}, {Name: "kretprobe"}}
	results := []KernelResult{
		{Kernel: "6.1", BuildErr: []string{"broken"}, Output: VMOutput{Pkgs: []PkgRun{
			{Run: "fexit", Pkg: "tracer", Tests: []TestResult{
				{Name: "TestAccept", Status: Pass, Hook: "fexit"},
				{Name: "TestAccept/v4", Status: Pass},
			}},
			{Run: "kretprobe", Pkg: "tracer", Exit: 1, Tests: []TestResult{
				{Name: "TestAccept", Status: Pass, Hook: "kretprobe"},
				{Name: "TestAccept/v4", Status: Pass},
			}},
		}}},
		{Kernel: "5.10", Problem: "kernel panic"},
	}
	table := newResultTable(results, runs)
	var b strings.Builder
	if err := table.write(&b); err != nil {
		t.Fatal(err)
	}
	want := `TEST               6.1/fexit   6.1/kretprobe   5.10/fexit  5.10/kretprobe
broken (build)     FAIL        FAIL            -           -
tracer TestAccept  pass fexit  pass kretprobe  -           -
tracer (binary)    -           FAIL exit 1     -           -
(vm)               -           -               FAIL        FAIL
(1 subtests that passed everywhere are not listed; results.json has them)
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	n := table.counts()
	if n[Pass] != 4 || n[Fail] != 3+2 || n[Skip] != 0 {
		t.Errorf("counts %v, want 4 pass, 5 fail", n)
	}
}
