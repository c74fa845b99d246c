package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// README's "How it works" names every package of the module with the
// packages of the module it imports: what a newcomer reads there is what
// the code is.
func TestReadmeArchitecture(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if errors.Is(err, fs.ErrNotExist) {
		// the kernel matrix's VMs get test binaries and testdata only;
		// the host's run of this test is the one that counts
		t.Skip("no source tree here (a vmtest guest)")
	}
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	start := strings.Index(section, "## How it works")
	if start < 0 {
		t.Fatal(`README has no "## How it works"`)
	}
	section = section[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	// "- `pkg` (imports `a`, `b`): ..." or "(imports nothing of ours..."
	bullet := regexp.MustCompile("`([a-z/]+)` \\(imports ((?:nothing of ours)|(?:`[a-z/]+`(?:,\\s+`[a-z/]+`)*))")
	documented := map[string][]string{}
	for _, m := range bullet.FindAllStringSubmatch(section, -1) {
		var imports []string
		for _, q := range regexp.MustCompile("`([a-z/]+)`").FindAllStringSubmatch(m[2], -1) {
			imports = append(imports, q[1])
		}
		documented[m[1]] = imports
	}

	const module = "github.com/socklife/socklife/"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		var imports []string
		for _, imp := range fields[1:] {
			if rest, ok := strings.CutPrefix(imp, module); ok {
				imports = append(imports, rest)
			}
		}
		slices.Sort(imports)
		got, ok := documented[pkg]
		if !ok {
			t.Errorf("README's How it works does not name %s (imports %v)", pkg, imports)
			continue
		}
		slices.Sort(got)
		if !slices.Equal(got, imports) {
			t.Errorf("README says %s imports %v; it imports %v", pkg, got, imports)
		}
		delete(documented, pkg)
	}
	for pkg := range documented {
		t.Errorf("README's How it works names %s, which is not a package", pkg)
	}
}
