package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeArchive puts an apt-get and an apt-cache on PATH that serve a
// Debian archive holding only the packages named in have: the state of
// the archive after a kernel series moved on from a pin.
func fakeArchive(t *testing.T, have ...string) {
	t.Helper()
	dir := t.TempDir()
	aptGet := `#!/bin/sh
for last; do :; done
case " $* " in
*" update "*) exit 0 ;;
*" download "*)
	for p in ` + strings.Join(have, " ") + `; do
		if [ "$p" = "$last" ]; then : > "${p}_1_amd64.deb"; exit 0; fi
	done
	echo "E: Unable to locate package $last" >&2; exit 100 ;;
esac
exit 1
`
	// apt-cache search --names-only REGEX
	aptCache := `#!/bin/sh
for last; do :; done
for p in ` + strings.Join(have, " ") + `; do echo "$p"; done | grep -E "$last" | sed 's/$/ - Linux for 64-bit PCs (signed)/'
exit 0
`
	for name, script := range map[string]string{"apt-get": aptGet, "apt-cache": aptCache} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
}

// A pin the archive dropped fails with the package to bump to, or, with
// -newest-if-gone, is replaced by the newest of its series.
func TestFetchDebPinGone(t *testing.T) {
	const pin, newer = "linux-image-6.1.0-56-amd64", "linux-image-6.1.0-57-amd64"
	for _, tt := range []struct {
		name         string
		have         []string
		newestIfGone bool
		want         string // package fetched, "" for an error
		wantErr      string
	}{
		{"pin there", []string{pin, newer}, false, pin, ""},
		{"pin gone", []string{"linux-image-6.1.0-55-amd64", newer, "linux-image-6.12.117+deb12-amd64"}, false, "",
			"downloading " + pin + " (newest of that series: " + newer + "; bump it in internal/cmd/vmtest/kernels.txt)"},
		{"pin gone, newest instead", []string{newer}, true, newer, ""},
		{"series gone", []string{"linux-image-6.12.117+deb12-amd64"}, true, "", "downloading " + pin + ": "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fakeArchive(t, tt.have...)
			apt := &privateApt{dir: t.TempDir()}
			debDir := filepath.Join(t.TempDir(), "debs")
			deb, fetched, err := apt.fetchDeb(context.Background(), debDir, pin, tt.newestIfGone)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("fetchDeb: %q, %v; want the error %q", fetched, err, tt.wantErr)
				}
				return
			}
			if err != nil || fetched != tt.want || deb != filepath.Join(debDir, tt.want+"_1_amd64.deb") {
				t.Fatalf("fetchDeb: %q %q %v; want %s", deb, fetched, err, tt.want)
			}
			// The next run finds it in the cache, archive or not.
			fakeArchive(t)
			if deb2, fetched2, err := apt.fetchDeb(context.Background(), debDir, tt.want, false); err != nil || deb2 != deb || fetched2 != tt.want {
				t.Errorf("cached fetch: %q %q %v", deb2, fetched2, err)
			}
		})
	}
}
