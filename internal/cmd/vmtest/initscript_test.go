package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRenderInit(t *testing.T) {
	script, err := renderInit(initParams{
		Modules: []string{"inet_diag", "tcp_diag"},
		Runs: []Run{
			{Name: "fexit", Env: []string{"SOCKLIFE_TEST_EXPECT_ACCEPT_HOOK=fexit"}},
			{Name: "kretprobe", Env: []string{"SOCKLIFE_TEST_DISABLE_HOOKS=fexit", "SOCKLIFE_TEST_EXPECT_ACCEPT_HOOK=kretprobe"}},
		},
		Pkgs:        []testPkg{{Rel: "cmd/socklife"}, {Rel: "snapshot"}},
		TestTimeout: 5 * time.Minute,
		TestRun:     "TestA|TestB",
	})
	if err != nil {
		t.Fatal(err)
	}
	// In this order: modules before lo, lo before tests, every binary per
	// run from its own directory, the end marker last.
	want := []string{
		"mount -t tracefs tracefs /sys/kernel/tracing",
		"mount -t bpf bpffs /sys/fs/bpf",
		"mount -t cgroup2 cgroup2 /sys/fs/cgroup",
		"mount -t devpts -o ptmxmode=0666 devpts /dev/pts",
		`echo "VMTEST-BOOTED $(uname -r)" >&3`,
		"insmod /modules/inet_diag.ko || ",
		"insmod /modules/tcp_diag.ko || ",
		"ip link set lo up",
		"ulimit -n 1048576",
		"export SOCKLIFE_BIN=/bin/socklife",
		`echo "VMTEST-BEGIN fexit cmd/socklife" >&3`,
		"cd /src/cmd/socklife && env SOCKLIFE_TEST_EXPECT_ACCEPT_HOOK=fexit ./socklife.test -test.v -test.count=1 -test.timeout=5m0s -test.run='TestA|TestB' >&3 2>&1",
		`echo "VMTEST-END fexit cmd/socklife $?" >&3`,
		"cd /src/snapshot && env SOCKLIFE_TEST_EXPECT_ACCEPT_HOOK=fexit ./snapshot.test",
		"cd /src/cmd/socklife && env SOCKLIFE_TEST_DISABLE_HOOKS=fexit SOCKLIFE_TEST_EXPECT_ACCEPT_HOOK=kretprobe ./socklife.test",
		"cd /src/snapshot && env SOCKLIFE_TEST_DISABLE_HOOKS=fexit SOCKLIFE_TEST_EXPECT_ACCEPT_HOOK=kretprobe ./snapshot.test",
		`echo "VMTEST-DONE" >&3`,
		"poweroff -f",
	}
	rest := script
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("init script lacks %q after the previous line; script:\n%s", w, script)
		}
		rest = rest[i+len(w):]
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"A=fexit":         "A=fexit",
		"TestA|TestB":     "'TestA|TestB'",
		"it's":            `'it'\''s'`,
		"":                "''",
		"X=a b":           "'X=a b'",
		"^TestDump/ipv6$": "'^TestDump/ipv6$'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSharedLibs(t *testing.T) {
	ldd := "\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibselinux.so.1 => /lib/x86_64-linux-gnu/libselinux.so.1 (0x00007f83)\n" +
		"\tlibmnl.so.0 => /lib/x86_64-linux-gnu/libmnl.so.0 (0x00007f84)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f85)\n"
	want := []string{"/lib/x86_64-linux-gnu/libselinux.so.1", "/lib/x86_64-linux-gnu/libmnl.so.0", "/lib64/ld-linux-x86-64.so.2"}
	if got, err := sharedLibs(ldd); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("sharedLibs = %q, %v; want %q", got, err, want)
	}
	if _, err := sharedLibs(ldd + "\tlibgone.so.2 => not found\n"); err == nil || !strings.Contains(err.Error(), "libgone.so.2 not found") {
		t.Errorf("sharedLibs with a missing library: error %v", err)
	}
}
