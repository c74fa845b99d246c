package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Debian's kernel packages ship no modules.dep (depmod runs in postinst),
// so the runner reads what depmod would: the "depends=" entry of each
// module's .modinfo section.

// moduleName normalises a module file or module name: depmod treats - and _
// as the same character.
func moduleName(s string) string {
	s = filepath.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// moduleIndex maps module names to their files under lib/modules/<release>.
type moduleIndex struct {
	files   map[string]string
	builtin map[string]bool
}

func indexModules(modulesDir string) (*moduleIndex, error) {
	idx := &moduleIndex{files: map[string]string{}, builtin: map[string]bool{}}
	err := filepath.WalkDir(filepath.Join(modulesDir, "kernel"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			idx.files[moduleName(d.Name())] = path
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("indexing modules: %w", err)
	}
	if builtin, err := os.ReadFile(filepath.Join(modulesDir, "modules.builtin")); err == nil {
		for line := range strings.Lines(string(builtin)) {
			idx.builtin[moduleName(strings.TrimSpace(line))] = true
		}
	}
	return idx, nil
}

// loadOrder lists the modules to insmod, dependencies first, each once.
// Built-in modules need no loading and are left out.
func loadOrder(want []string, depends func(name string) ([]string, error)) ([]string, error) {
	var order []string
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(path, name), " → "))
		case 2:
			return nil
		}
		state[name] = 1
		deps, err := depends(name)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		if deps != nil { // nil: built in
			order = append(order, name)
		}
		return nil
	}
	for _, name := range want {
		if err := visit(moduleName(name), nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// load returns a module's uncompressed file, or nil for a built-in module.
func (idx *moduleIndex) load(ctx context.Context, name string) ([]byte, error) {
	path, ok := idx.files[name]
	if !ok {
		if idx.builtin[name] {
			return nil, nil
		}
		return nil, fmt.Errorf("module %s: neither a file in the package nor built in", name)
	}
	return readModule(ctx, path)
}

// readModule returns the uncompressed module: the VMs' busybox insmod
// cannot load .ko.xz, and the older kernels cannot decompress in-kernel.
func readModule(ctx context.Context, path string) ([]byte, error) {
	var tool string
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.xz"):
		tool = "xz"
	case strings.HasSuffix(path, ".ko.zst"):
		tool = "zstd"
	case strings.HasSuffix(path, ".ko.gz"):
		tool = "gzip"
	default:
		return nil, fmt.Errorf("unknown module compression: %s", path)
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, "-dc", path)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("decompressing %s: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}

// modinfoDepends reads "depends=a,b" from a module's .modinfo section,
// a list of NUL-terminated key=value strings.
func modinfoDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("reading module ELF: %w", err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module has no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo: %w", err)
	}
	deps := []string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Split(splitNUL)
	for sc.Scan() {
		if list, ok := strings.CutPrefix(sc.Text(), "depends="); ok && list != "" {
			for d := range strings.SplitSeq(list, ",") {
				deps = append(deps, moduleName(d))
			}
		}
	}
	return deps, sc.Err()
}

func splitNUL(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// stageModules writes the wanted modules and their dependencies,
// uncompressed, to destDir/<name>.ko and returns their load order.
func stageModules(ctx context.Context, modulesDir string, want []string, destDir string) ([]string, error) {
	idx, err := indexModules(modulesDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(destDir, 0o755); err != nil {
		return nil, err
	}
	depends := func(name string) ([]string, error) {
		ko, err := idx.load(ctx, name)
		if err != nil || ko == nil {
			return nil, err
		}
		deps, err := modinfoDepends(ko)
		if err != nil {
			return nil, fmt.Errorf("module %s: %w", name, err)
		}
		return deps, os.WriteFile(filepath.Join(destDir, name+".ko"), ko, 0o644)
	}
	return loadOrder(want, depends)
}
