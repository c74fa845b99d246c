package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// FileFacts is what a tool that refuses to write path must leave as it
// was: mode, owner and (for a regular file outside /proc) content.
func FileFacts(tb testing.TB, path string) string {
	tb.Helper()
	st, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	facts := fmt.Sprintf("mode %v uid %d gid %d", st.Mode(), sys.Uid, sys.Gid)
	if st.Mode().IsRegular() && !strings.HasPrefix(path, "/proc/") {
		b, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		facts += " content " + strconv.Quote(string(b))
	}
	return facts
}

// PlantLink makes what an unprivileged user can leave in /tmp for root:
// a file holding content, owned by uid (if not -1), and a symbolic link
// to it. It returns both paths.
func PlantLink(tb testing.TB, dir, content string, uid int) (link, target string) {
	tb.Helper()
	target = filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	if uid >= 0 {
		if err := os.Chown(target, uid, uid); err != nil {
			tb.Fatal(err)
		}
	}
	link = filepath.Join(dir, "planted")
	if err := os.Symlink(target, link); err != nil {
		tb.Fatal(err)
	}
	return link, target
}
