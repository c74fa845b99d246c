package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMatrixFile checks the committed kernels.txt: the three kernels of the
// issue, the bullseye source the 5.10 package needs, the diag modules, and
// the two runs with the hooks they expect.
func TestMatrixFile(t *testing.T) {
	m, err := parseMatrix(strings.NewReader(matrixFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.kernelNames(); !reflect.DeepEqual(got, []string{"5.10", "6.1", "6.12"}) {
		t.Errorf("kernels %v, want 5.10 6.1 6.12", got)
	}
	for _, k := range m.Kernels {
		if !strings.HasPrefix(k.Package, "linux-image-"+k.Name+".") || !strings.HasSuffix(k.Package, "-amd64") {
			t.Errorf("kernel %s pins %s, not a linux-image-%s.*-amd64 package", k.Name, k.Package, k.Name)
		}
	}
	if !slices.ContainsFunc(m.Sources, func(s string) bool { return strings.HasSuffix(s, " bullseye main") }) {
		t.Errorf("no bullseye source for the 5.10 kernel in %q", m.Sources)
	}
	for _, mod := range []string{"inet_diag", "tcp_diag", "udp_diag", "unix_diag"} {
		if !slices.Contains(m.Modules, mod) {
			t.Errorf("module %s is not loaded", mod)
		}
	}
	var hooks []string
	for _, r := range m.Runs {
		hooks = append(hooks, r.ExpectHook())
	}
	if !reflect.DeepEqual(hooks, []string{"fexit", "kretprobe"}) {
		t.Errorf("runs expect hooks %v, want fexit then kretprobe", hooks)
	}
}

func TestParseMatrixErrors(t *testing.T) {
	const ok = "kernel 6.1 linux-image-6.1.0-1-amd64\nsource deb http://x y main\nrun r A=1\n"
	tests := []struct{ in, errPart string }{
		{ok + "kernel 6.1 other\n", "line 4: kernel 6.1 listed twice"},
		{ok + "kernel 6.2\n", "want \"kernel NAME PACKAGE\""},
		{ok + "source http://x y main\n", "want \"source deb ...\""},
		{ok + "run r2 NOVALUE\n", "\"NOVALUE\" is not VAR=VALUE"},
		{ok + "module\n", "names no module"},
		{ok + "kernal 6.2 x\n", "unknown keyword \"kernal\""},
		{"# only a comment\n", "need at least one kernel"},
	}
	for _, tt := range tests {
		_, err := parseMatrix(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.errPart) {
			t.Errorf("parseMatrix(%q) error %v, want one containing %q", tt.in, err, tt.errPart)
		}
	}
	if _, err := parseMatrix(strings.NewReader(ok)); err != nil {
		t.Errorf("parseMatrix(%q): %v", ok, err)
	}
}

func TestSelectKernels(t *testing.T) {
	m, err := parseMatrix(strings.NewReader(matrixFile))
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.selectKernels("6.12, 5.10")
	if err != nil || len(got) != 2 || got[0].Name != "6.12" || got[1].Name != "5.10" {
		t.Errorf("selectKernels(\"6.12, 5.10\") = %v, %v", got, err)
	}
	if _, err := m.selectKernels("4.19"); err == nil || !strings.Contains(err.Error(), `unknown kernel "4.19" (the matrix has 5.10, 6.1, 6.12)`) {
		t.Errorf("selectKernels(4.19) error %v", err)
	}
}

func TestParseFlags(t *testing.T) {
	for _, args := range [][]string{{"-accel", "hvf"}, {"-kernel"}, {"extra"}, {"-timeout", "soon"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted bad input", args)
		} else if _, ok := err.(usageError); !ok {
			t.Errorf("parseFlags(%q) error %v is not a usage error (exit 2)", args, err)
		}
	}
	o, err := parseFlags([]string{"-kernel", "6.1", "-accel", "tcg", "-timeout", "3m", "-newest-if-gone"})
	if err != nil || o.kernels != "6.1" || o.accel != "tcg" || o.timeout != 3*time.Minute || !o.newestIfGone {
		t.Errorf("parseFlags: %+v, %v", o, err)
	}
}

func TestSeriesAndNewest(t *testing.T) {
	for pkg, want := range map[string]string{
		"linux-image-6.12.117+deb12-amd64": `^linux-image-6\.12\.[0-9]+\+deb12-amd64$`,
		"linux-image-5.10.0-46-amd64":      `^linux-image-5\.10\.[0-9]+-[0-9]+-amd64$`,
		"linux-image-6.1.0-56-cloud-amd64": `^linux-image-6\.1\.[0-9]+-[0-9]+-cloud-amd64$`,
	} {
		if got := seriesPattern(pkg); got != want {
			t.Errorf("seriesPattern(%s) = %s, want %s", pkg, got, want)
		}
	}
	names := []string{"linux-image-6.1.0-9-amd64", "linux-image-6.1.0-56-amd64", "linux-image-6.1.0-10-amd64"}
	if got := slices.MaxFunc(names, compareNatural); got != "linux-image-6.1.0-56-amd64" {
		t.Errorf("newest of %v = %s", names, got)
	}
	for _, tt := range []struct {
		a, b string
		sign int
	}{
		{"6.12.9", "6.12.10", -1}, {"6.12.010", "6.12.10", 0}, {"a-2", "a-2", 0}, {"a-2-x", "a-2", 1}, {"b-1", "a-9", 1},
	} {
		if got := compareNatural(tt.a, tt.b); sign(got) != tt.sign {
			t.Errorf("compareNatural(%s, %s) = %d, want sign %d", tt.a, tt.b, got, tt.sign)
		}
	}
}

func sign(n int) int { return min(max(n, -1), 1) }
