package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// testPkg is a package with tests, as the VM sees it: its binary runs in
// /src/<Rel>, next to a copy of the package's testdata.
type testPkg struct {
	ImportPath string
	Dir        string // on the host
	Rel        string // relative to the module root: "snapshot", "cmd/socklife"
}

// Binary is the test binary's file name inside the package directory.
func (p testPkg) Binary() string { return filepath.Base(p.Rel) + ".test" }

// listTestPkgs lists the packages matching patterns that have test files.
func listTestPkgs(ctx context.Context, modRoot string, patterns []string) ([]testPkg, error) {
	args := append([]string{"list", "-f", "{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}"}, patterns...)
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = modRoot, &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("listing test packages: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var pkgs []testPkg
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		path, dir, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		rel, err := filepath.Rel(modRoot, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("package %s is outside the module at %s", path, modRoot)
		}
		pkgs = append(pkgs, testPkg{ImportPath: path, Dir: dir, Rel: rel})
	}
	return pkgs, sc.Err()
}

// staticEnv builds binaries that run in a busybox initramfs with no libc.
// They are built with -s -w too: without DWARF the initramfs is a third
// smaller, and Go's own stack traces do not need it.
func staticEnv() []string {
	return append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
}

// buildTest compiles pkg's test binary into dir, returning the compiler's
// complaint on failure: a package that does not build is a failed row in
// the table, not the end of the whole matrix.
func buildTest(ctx context.Context, modRoot string, pkg testPkg, dir string) error {
	return goBuild(ctx, modRoot, "test", "-c", "-ldflags=-s -w", "-o", filepath.Join(dir, pkg.Binary()), pkg.ImportPath)
}

// buildSocklife builds the binary the CLI tests exec (SOCKLIFE_BIN).
func buildSocklife(ctx context.Context, modRoot, out string) error {
	return goBuild(ctx, modRoot, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/socklife")
}

func goBuild(ctx context.Context, modRoot string, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env, cmd.Stderr = modRoot, staticEnv(), &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the socklife module: run from the repository")
	}
	return filepath.Dir(gomod), nil
}

// sharedLibs parses ldd output into the files a dynamic binary needs,
// the loader included.
func sharedLibs(lddOutput string) ([]string, error) {
	var libs []string
	for line := range strings.Lines(lddOutput) {
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 3 && fields[1] == "=>" && fields[2] == "not":
			return nil, fmt.Errorf("library %s not found", fields[0])
		case len(fields) >= 3 && fields[1] == "=>" && strings.HasPrefix(fields[2], "/"):
			libs = append(libs, fields[2])
		case len(fields) >= 1 && strings.HasPrefix(fields[0], "/"):
			libs = append(libs, fields[0])
		}
	}
	return libs, nil
}

// whichStatic finds a command that must run with no shared libraries.
func whichStatic(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", err
	}
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked: install busybox-static", path)
		}
	}
	return path, nil
}
