package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
)

// cacheRoot is where downloads and extracted kernels live, outside the
// repository, so that they survive `git clean` and are shared by checkouts.
func cacheRoot() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding the cache directory: %w", err)
		}
		base = filepath.Join(home, ".cache")
	}
	dir := filepath.Join(base, "socklife-vmtest")
	// Made here, not by whoever writes first: with -out elsewhere nothing
	// else creates it on a fresh machine.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("making the cache directory: %w", err)
	}
	return dir, nil
}

// hostTools maps each command the runner needs to the Debian package that
// provides it.
var hostTools = []struct{ cmd, pkg string }{
	{"qemu-system-x86_64", "qemu-system-x86"},
	{"busybox", "busybox-static"},
	{"cpio", "cpio"},
	{"xz", "xz-utils"},
	{"dpkg-deb", "dpkg"},
	{"ss", "iproute2"},
}

// ensureTools installs the missing host tools with apt-get. The Debian
// archive keyring is needed too: the private apt state verifies with it.
func ensureTools(ctx context.Context) error {
	var missing []string
	for _, t := range hostTools {
		if _, err := exec.LookPath(t.cmd); err != nil {
			missing = append(missing, t.pkg)
		}
	}
	// A dynamic busybox (Ubuntu's "busybox") cannot run in the initramfs.
	if _, err := whichStatic("busybox"); err != nil && !slices.Contains(missing, "busybox-static") {
		missing = append(missing, "busybox-static")
	}
	if _, err := os.Stat(debianKeyring); err != nil {
		missing = append(missing, "debian-archive-keyring")
	}
	if len(missing) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing %s: install them (apt-get install %s) or run as root", strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	logf("installing %s", strings.Join(missing, " "))
	if err := command(ctx, "", "apt-get", "update", "-qq"); err != nil {
		return fmt.Errorf("updating apt: %w", err)
	}
	args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)
	if err := command(ctx, "", "apt-get", args...); err != nil {
		return fmt.Errorf("installing %s: %w", strings.Join(missing, " "), err)
	}
	return nil
}

const debianKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// privateApt runs apt-get against a state directory of its own (sources,
// lists, archives), so fetching bullseye packages on a bookworm host leaves
// the host's apt configuration and lists exactly as they were.
type privateApt struct {
	dir     string
	sources []string
	updated bool
}

func (a *privateApt) options() []string {
	return []string{
		"-o", "Dir::Etc::sourcelist=" + filepath.Join(a.dir, "sources.list"),
		"-o", "Dir::Etc::sourceparts=" + filepath.Join(a.dir, "sources.list.d"),
		"-o", "Dir::State::Lists=" + filepath.Join(a.dir, "lists"),
		"-o", "Dir::State::status=" + filepath.Join(a.dir, "status"),
		"-o", "Dir::Cache=" + filepath.Join(a.dir, "cache"),
		"-o", "APT::Sandbox::User=root",
		"-o", "Debug::NoLocking=1",
		"-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"-q",
	}
}

// update refreshes the private package lists, once per process.
func (a *privateApt) update(ctx context.Context) error {
	if a.updated {
		return nil
	}
	for _, d := range []string{"sources.list.d", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return err
		}
	}
	list := strings.Join(a.sources, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(a.dir, "sources.list"), []byte(list), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(a.dir, "status"), nil, 0o644); err != nil {
		return err
	}
	if err := command(ctx, "", "apt-get", append(a.options(), "update")...); err != nil {
		return fmt.Errorf("updating the private apt lists in %s: %w", a.dir, err)
	}
	a.updated = true
	return nil
}

// fetchDeb returns the cached .deb of pkg, downloading it on a miss, and
// the package it holds. Debian keeps only the newest ABI of a kernel
// series, so a pin goes missing when the series moves on; with
// newestIfGone the newest of the series stands in for it (the caller says
// so), for CI that tests our code rather than the archive's bookkeeping.
func (a *privateApt) fetchDeb(ctx context.Context, debDir, pkg string, newestIfGone bool) (deb, fetched string, err error) {
	if deb := cachedDeb(debDir, pkg); deb != "" {
		return deb, pkg, nil
	}
	if err := a.update(ctx); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(debDir, 0o755); err != nil {
		return "", "", err
	}
	if err := a.download(ctx, debDir, pkg); err != nil {
		newest, nerr := a.newest(ctx, pkg)
		if nerr != nil || newest == "" || newest == pkg {
			return "", "", fmt.Errorf("downloading %s: %w", pkg, err)
		}
		if !newestIfGone {
			return "", "", fmt.Errorf("downloading %s (newest of that series: %s; bump it in internal/cmd/vmtest/kernels.txt): %w", pkg, newest, err)
		}
		return a.fetchDeb(ctx, debDir, newest, false)
	}
	return cachedDeb(debDir, pkg), pkg, nil
}

// download runs apt-get download for pkg into debDir and checks it left
// the .deb there.
func (a *privateApt) download(ctx context.Context, debDir, pkg string) error {
	if err := command(ctx, debDir, "apt-get", append(a.options(), "download", pkg)...); err != nil {
		return err
	}
	if cachedDeb(debDir, pkg) == "" {
		return fmt.Errorf("apt-get download %s left no %s_*.deb in %s", pkg, pkg, debDir)
	}
	return nil
}

func cachedDeb(debDir, pkg string) string {
	matches, _ := filepath.Glob(filepath.Join(debDir, pkg+"_*.deb"))
	if len(matches) == 0 {
		return ""
	}
	return matches[len(matches)-1]
}

// newest finds the newest package of the same series as pkg: the same
// kernel version with any ABI and patch numbers, e.g. linux-image-6.1.0-56-amd64
// → linux-image-6.1.0-57-amd64.
func (a *privateApt) newest(ctx context.Context, pkg string) (string, error) {
	if err := a.update(ctx); err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "apt-cache", append(a.options(), "search", "--names-only", seriesPattern(pkg))...)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("searching the private apt lists: %w", err)
	}
	var names []string
	for line := range strings.Lines(out.String()) {
		if name, _, ok := strings.Cut(line, " "); ok {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	return slices.MaxFunc(names, compareNatural), nil
}

var digitRun = regexp.MustCompile(`[0-9]+`)

// seriesPattern turns a kernel package name into an anchored apt-cache
// regexp for its series: the first two numbers (the kernel version) and
// numbers inside words ("deb12", "amd64") stay, the other numbers may vary.
func seriesPattern(pkg string) string {
	var b strings.Builder
	b.WriteString("^")
	tokens := naturalToken.FindAllString(pkg, -1)
	numbers := 0
	for i, tok := range tokens {
		if !digitRun.MatchString(tok) {
			b.WriteString(regexp.QuoteMeta(tok))
			continue
		}
		numbers++
		inWord := i > 0 && endsWithLetter(tokens[i-1]) || i+1 < len(tokens) && startsWithLetter(tokens[i+1])
		if numbers <= 2 || inWord {
			b.WriteString(tok)
		} else {
			b.WriteString("[0-9]+")
		}
	}
	return b.String() + "$"
}

func endsWithLetter(s string) bool   { return isLetter(s[len(s)-1]) }
func startsWithLetter(s string) bool { return isLetter(s[0]) }
func isLetter(c byte) bool           { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// compareNatural orders names with embedded numbers by value: 6.1.0-9 < 6.1.0-10.
func compareNatural(a, b string) int {
	ta, tb := naturalToken.FindAllString(a, -1), naturalToken.FindAllString(b, -1)
	for i := 0; i < len(ta) && i < len(tb); i++ {
		x, y := ta[i], tb[i]
		if digitRun.MatchString(x) && digitRun.MatchString(y) {
			x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
			if c := len(x) - len(y); c != 0 {
				return c
			}
		}
		if c := strings.Compare(x, y); c != 0 {
			return c
		}
	}
	return len(ta) - len(tb)
}

var naturalToken = regexp.MustCompile(`[0-9]+|[^0-9]+`)

// extractedKernel is a kernel package unpacked in the cache.
type extractedKernel struct {
	Vmlinuz    string
	ModulesDir string // lib/modules/<release>
	Release    string
}

// extract unpacks deb once into dir and finds the kernel image in it. It
// unpacks next to dir and renames, so a concurrent run never sees half a tree.
func extract(ctx context.Context, deb, dir string) (*extractedKernel, error) {
	if _, err := os.Stat(dir); err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		tmp, err := os.MkdirTemp(filepath.Dir(dir), ".extract-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		if err := command(ctx, "", "dpkg-deb", "-x", deb, tmp); err != nil {
			return nil, fmt.Errorf("extracting %s: %w", deb, err)
		}
		// Losing the race to another run is fine: its tree is the same.
		if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
			return nil, fmt.Errorf("caching the extracted kernel: %w", err)
		}
	}
	images, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return nil, fmt.Errorf("want one boot/vmlinuz-* in %s, found %d", dir, len(images))
	}
	release := strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")
	// Newer Debian packages install modules under /usr/lib (merged /usr).
	for _, lib := range []string{"lib", "usr/lib"} {
		mods := filepath.Join(dir, lib, "modules", release)
		if _, err := os.Stat(mods); err == nil {
			return &extractedKernel{Vmlinuz: images[0], ModulesDir: mods, Release: release}, nil
		}
	}
	return nil, fmt.Errorf("no modules directory for %s in %s", release, dir)
}

// command runs a tool with its output on stderr, so progress shows and a
// failure explains itself.
func command(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running %s: %w", name, err)
	}
	return nil
}
