package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// KernelResult is everything one kernel's VM produced.
type KernelResult struct {
	Kernel   string        `json:"kernel"`
	Package  string        `json:"package"`
	Accel    string        `json:"accel"`
	Boot     time.Duration `json:"boot_ns"`           // qemu start to /init
	Elapsed  time.Duration `json:"elapsed_ns"`        // fetch to power-off
	Problem  string        `json:"problem,omitempty"` // the VM itself failed: setup, panic, hang
	Output   VMOutput      `json:"output"`
	BuildErr []string      `json:"build_failed,omitempty"` // packages whose tests did not compile
}

// cell is one test in one kernel × run column.
type cell struct {
	status Status
	text   string
}

// resultTable is the kernel × run columns by test rows.
type resultTable struct {
	cols  []string
	rows  []string           // in order of first appearance
	cells map[[2]string]cell // {row, col}
}

func newResultTable(results []KernelResult, runs []Run) *resultTable {
	t := &resultTable{cells: map[[2]string]cell{}}
	for _, kr := range results {
		for _, run := range runs {
			col := kr.Kernel + "/" + run.Name
			t.cols = append(t.cols, col)
			t.addColumn(col, run.Name, kr)
		}
	}
	return t
}

func (t *resultTable) addColumn(col, run string, kr KernelResult) {
	if kr.Problem != "" {
		t.set("(vm)", col, Fail, "FAIL") // the reason is printed under the table
	}
	for _, pkg := range kr.BuildErr {
		t.set(pkg+" (build)", col, Fail, "FAIL")
	}
	for _, m := range kr.Output.ModuleFailed {
		t.set("(insmod "+m+")", col, Fail, "FAIL")
	}
	for _, p := range kr.Output.Pkgs {
		if p.Run != run {
			continue
		}
		failed := false
		for _, tr := range p.Tests {
			t.set(p.Pkg+" "+tr.Name, col, tr.Status, cellText(tr))
			failed = failed || tr.Status == Fail
		}
		// A binary can fail outside any test: TestMain, init, a crash.
		if p.Exit != 0 && !failed {
			t.set(p.Pkg+" (binary)", col, Fail, fmt.Sprintf("FAIL exit %d", p.Exit))
		}
	}
}

func cellText(tr TestResult) string {
	s := string(tr.Status)
	if tr.Status == Fail {
		s = "FAIL"
	}
	if tr.Hook != "" {
		s += " " + tr.Hook
	}
	if tr.Note != "" {
		s += " (" + tr.Note + ")"
	}
	return s
}

func (t *resultTable) set(row, col string, st Status, text string) {
	if !t.hasRow(row) {
		t.rows = append(t.rows, row)
	}
	t.cells[[2]string{row, col}] = cell{st, text}
}

func (t *resultTable) hasRow(row string) bool {
	for _, col := range t.cols {
		if _, ok := t.cells[[2]string{row, col}]; ok {
			return true
		}
	}
	return false
}

// counts tallies the cells by status.
func (t *resultTable) counts() map[Status]int {
	n := map[Status]int{}
	for _, c := range t.cells {
		n[c.status]++
	}
	return n
}

// write prints the table: one row per test, one column per kernel and
// run; "-" where a test did not run in that column. Subtests that passed
// everywhere with nothing to say (table cases, fuzz seeds) are counted, not
// listed: their parent's row already says so. (A column where one did not
// run at all has a failed parent or a failed VM row.)
func (t *resultTable) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TEST\t%s\n", strings.Join(t.cols, "\t"))
	quiet := 0
	for _, row := range t.rows {
		if t.quietSubtest(row) {
			quiet++
			continue
		}
		texts := make([]string, len(t.cols))
		for i, col := range t.cols {
			texts[i] = "-"
			if c, ok := t.cells[[2]string{row, col}]; ok {
				texts[i] = c.text
			}
		}
		fmt.Fprintf(tw, "%s\t%s\n", row, strings.Join(texts, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if quiet > 0 {
		_, err := fmt.Fprintf(w, "(%d subtests that passed everywhere are not listed; results.json has them)\n", quiet)
		return err
	}
	return nil
}

func (t *resultTable) quietSubtest(row string) bool {
	_, name, _ := strings.Cut(row, " ")
	if !strings.Contains(name, "/") {
		return false
	}
	for _, col := range t.cols {
		if c, ok := t.cells[[2]string{row, col}]; ok && c.text != string(Pass) {
			return false
		}
	}
	return true
}
