package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Status is a test's outcome.
type Status string

const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip"
)

// TestResult is one test (or subtest) of one binary in one run.
type TestResult struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Hook   string `json:"hook,omitempty"` // from "accept hook: NAME" in its log
	Note   string `json:"note,omitempty"` // why the runner, not the test, failed it
}

// PkgRun is one test binary's pass in one run of a VM.
type PkgRun struct {
	Run   string       `json:"run"`
	Pkg   string       `json:"pkg"`
	Exit  int          `json:"exit"`  // -1: it never finished
	Tests []TestResult `json:"tests"` // in the order they started
}

// VMOutput is what /init reported on the results port.
type VMOutput struct {
	Release      string   `json:"release"` // uname -r; "" if it never booted
	ModuleFailed []string `json:"module_failed,omitempty"`
	Pkgs         []PkgRun `json:"pkgs"`
	Done         bool     `json:"done"` // /init reached the end
}

var (
	goTestStart  = regexp.MustCompile(`^=== (RUN|NAME|CONT)\s+(\S+)`)
	goTestResult = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)
	hookLine     = regexp.MustCompile(`accept hook: (\S+)`)
)

// parseVMOutput reads the results port: markers from /init around the
// `go test -v` output of each binary. Output the VM cut short (a panic, a
// timeout) leaves the binary unfinished: Exit -1, running tests failed.
func parseVMOutput(r io.Reader) VMOutput {
	var out VMOutput
	var cur *PkgRun
	var current string // the test whose output this is, by the last === line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 2 && fields[0] == markBooted:
			out.Release = fields[1]
		case len(fields) == 2 && fields[0] == markModule:
			out.ModuleFailed = append(out.ModuleFailed, fields[1])
		case len(fields) == 3 && fields[0] == markBegin:
			finishPkg(cur)
			out.Pkgs = append(out.Pkgs, PkgRun{Run: fields[1], Pkg: fields[2], Exit: -1})
			cur, current = &out.Pkgs[len(out.Pkgs)-1], ""
		case len(fields) == 4 && fields[0] == markEnd && cur != nil && cur.Run == fields[1] && cur.Pkg == fields[2]:
			cur.Exit, _ = strconv.Atoi(fields[3])
			finishPkg(cur)
			cur = nil
		case line == markDone:
			out.Done = true
		case cur != nil:
			current = cur.parseLine(line, current)
		}
	}
	finishPkg(cur)
	return out
}

// parseLine takes one line of `go test -v` output and returns the test
// that the following lines belong to.
func (p *PkgRun) parseLine(line, current string) string {
	if m := goTestStart.FindStringSubmatch(line); m != nil {
		if m[1] == "RUN" {
			p.Tests = append(p.Tests, TestResult{Name: m[2]})
		}
		return m[2]
	}
	if m := goTestResult.FindStringSubmatch(line); m != nil {
		if t := p.test(m[2]); t != nil {
			t.Status = Status(strings.ToLower(m[1]))
		}
		return current
	}
	if m := hookLine.FindStringSubmatch(line); m != nil {
		if t := p.test(current); t != nil {
			t.Hook = m[1]
		}
	}
	return current
}

func (p *PkgRun) test(name string) *TestResult {
	for i := range p.Tests {
		if p.Tests[i].Name == name {
			return &p.Tests[i]
		}
	}
	return nil
}

// finishPkg fails the tests that never reported: the binary panicked,
// timed out, or the VM died under it.
func finishPkg(p *PkgRun) {
	if p == nil {
		return
	}
	for i := range p.Tests {
		if p.Tests[i].Status == "" {
			p.Tests[i].Status = Fail
			p.Tests[i].Note = "no result: the binary stopped while it ran"
		}
	}
}

// checkHooks fails a passing test that reported an accept hook other than
// the one its run expects: a silent fall to a lower rung is a failure.
func checkHooks(p *PkgRun, expect string) {
	if expect == "" {
		return
	}
	for i := range p.Tests {
		t := &p.Tests[i]
		if t.Hook != "" && t.Hook != expect && t.Status == Pass {
			t.Status = Fail
			t.Note = "accept ran on " + t.Hook + ", want " + expect
		}
	}
}
