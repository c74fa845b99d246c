package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The initramfs is a staging directory turned into a newc cpio archive,
// left uncompressed: under TCG the kernel would spend longer inflating it
// than qemu spends loading it.
//
//	/init                   the script from initScript
//	/bin/busybox, /bin/*    busybox and its applet links (made at boot)
//	/bin/socklife           SOCKLIFE_BIN for the CLI tests
//	/usr/bin/ss, /lib*/...  ss and the shared libraries ldd lists
//	/src/<pkg>/<pkg>.test   each test binary, with the package's testdata/
//	/modules/<name>.ko      uncompressed modules, loaded by /init in order

// stageCommon fills dir with what every kernel's initramfs shares, but
// for the binaries that are built straight into it.
func stageCommon(ctx context.Context, dir, busybox, ss string) error {
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "run", "root", "etc", "src"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{busybox: "bin/busybox", ss: "usr/bin/ss"}
	ldd, err := exec.CommandContext(ctx, "ldd", ss).Output()
	if err != nil {
		return fmt.Errorf("listing the libraries of %s: %w", ss, err)
	}
	libs, err := sharedLibs(string(ldd))
	if err != nil {
		return fmt.Errorf("%s: %w", ss, err)
	}
	for _, lib := range libs {
		files[lib] = strings.TrimPrefix(lib, "/")
	}
	for src, dst := range files {
		if err := copyFile(src, filepath.Join(dir, dst)); err != nil {
			return err
		}
	}
	etc := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":  "root:x:0:\n",
	}
	for name, content := range etc {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// stageTestdata copies a directory's testdata/, if any, to the same place
// under dir, because tests open it relative to their working directory.
func stageTestdata(hostDir, dir string) error {
	return stageDir(hostDir, dir, "testdata")
}

// stageDir copies hostDir/name, if it exists, to dir/name.
func stageDir(hostDir, dir, name string) error {
	src := filepath.Join(hostDir, name)
	if _, err := os.Stat(src); os.IsNotExist(err) {
		return nil
	}
	return copyTree(src, filepath.Join(dir, name))
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		default:
			return copyFile(path, target)
		}
	})
}

// copyFile copies src's content (following symlinks) and mode.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}

// writeCpio archives dir into out as newc, every file owned by root.
func writeCpio(ctx context.Context, dir, out string) error {
	var names []string
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		names = append(names, rel)
		return nil
	})
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, f, os.Stderr
	cmd.Stdin = strings.NewReader(strings.Join(names, "\n") + "\n")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("writing the initramfs: %w", err)
	}
	return f.Close()
}
