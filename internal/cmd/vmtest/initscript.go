package main

import (
	"strings"
	"text/template"
	"time"
)

// Lines the VM's /init writes around the test output, on the second serial
// port (ttyS1), so that kernel messages on the console never mix into it.
const (
	markBooted = "VMTEST-BOOTED"       // VMTEST-BOOTED <uname -r>
	markModule = "VMTEST-MODULE-FAIL"  // VMTEST-MODULE-FAIL <module>
	markBegin  = "VMTEST-BEGIN"        // VMTEST-BEGIN <run> <pkg>
	markEnd    = "VMTEST-END"          // VMTEST-END <run> <pkg> <exit status>
	markDone   = "VMTEST-DONE"         // all runs finished
	consoleUp  = "socklife-vmtest: up" // on the console, for the KVM probe
)

type initParams struct {
	Modules     []string
	Runs        []Run
	Pkgs        []testPkg
	TestTimeout time.Duration
	TestRun     string // -test.run, "" for all
}

// initScript is the VM's /init: mount what the tests need, load modules,
// bring lo up, run every test binary once per run, power off.
var initScript = template.Must(template.New("init").Funcs(template.FuncMap{
	"quote": shellQuote,
}).Parse(`#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TMPDIR=/tmp
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpffs /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts
mount -t devpts -o ptmxmode=0666 devpts /dev/pts
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
stty -F /dev/ttyS1 raw -echo
exec 3>/dev/ttyS1
echo "{{.Up}}"
echo "` + markBooted + ` $(uname -r)" >&3
{{range .P.Modules}}insmod /modules/{{.}}.ko || echo "` + markModule + ` {{.}}" >&3
{{end}}ip link set lo up
ulimit -n 1048576
# The VM's small memory sizes the TIME-WAIT table small: once the earlier
# tests' closed connections fill it, a new TIME-WAIT (or orphaned FIN-WAIT-2)
# socket is destroyed at once and the tests looking for it fail.
echo 1048576 > /proc/sys/net/ipv4/tcp_max_tw_buckets
export SOCKLIFE_BIN=/bin/socklife
# An emulated CPU is ten times slower or more: stretch the tests' deadlines
# (testutil.WaitFor), never their assertions.
export SOCKLIFE_TEST_TIMEOUT_SCALE=6
{{range $run := .P.Runs}}{{range $pkg := $.P.Pkgs}}
echo "socklife-vmtest: {{$run.Name}} {{$pkg.Rel}}"
echo "` + markBegin + ` {{$run.Name}} {{$pkg.Rel}}" >&3
cd /src/{{$pkg.Rel}} && env{{range $run.Env}} {{quote .}}{{end}} ./{{$pkg.Binary}} -test.v -test.count=1 -test.timeout={{$.P.TestTimeout}}{{if $.P.TestRun}} -test.run={{quote $.P.TestRun}}{{end}} >&3 2>&1
echo "` + markEnd + ` {{$run.Name}} {{$pkg.Rel}} $?" >&3
{{end}}{{end}}
cd /
echo "` + markDone + `" >&3
sync
poweroff -f
`))

func renderInit(p initParams) (string, error) {
	var b strings.Builder
	err := initScript.Execute(&b, struct {
		Up string
		P  initParams
	}{consoleUp, p})
	return b.String(), err
}

// shellQuote quotes s for sh unless it is plainly safe.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-=.,/:+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
