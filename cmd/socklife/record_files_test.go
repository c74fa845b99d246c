package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/churn"
	"github.com/socklife/socklife/internal/testutil"
)

// runRefused runs socklife with args and checks the refusal: exit status
// 1, one line on stderr starting with want and ending in end, and look
// left as it was.
func runRefused(t *testing.T, look, want, end string, args ...string) {
	t.Helper()
	before := testutil.FileFacts(t, look)
	cmd := socklifeCmd(t, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A path taken instead of refused starts a recording that runs on.
	kill := time.AfterFunc(testutil.Scaled(20*time.Second), func() { cmd.Process.Kill() })
	defer kill.Stop()
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.HasPrefix(stderr.String(), want) || !strings.HasSuffix(stderr.String(), end+"\n") || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("%v: %v, stderr %q; want exit status 1 and one line %q...%q", args, err, stderr.String(), want, end)
	}
	if after := testutil.FileFacts(t, look); after != before {
		t.Errorf("%v changed %s: %s, was %s", args, look, after, before)
	}
}

// Root's record in a directory anyone can write (/tmp): a symbolic link,
// a device or another user's file planted at -o is refused before anything
// is attached, and left exactly as it was. --overwrite is the way round.
func TestRecordRefusesPlantedPaths(t *testing.T) {
	testutil.RequireRoot(t)
	link, target := testutil.PlantLink(t, t.TempDir(), "precious\n", 65534)
	for _, c := range []struct{ path, look, why string }{
		{link, target, "a symbolic link, not followed"},
		{target, target, "a file of uid 65534, not of uid 0"},
		{"/dev/null", "/dev/null", "a character device, not a regular file"},
		{"/dev/full", "/dev/full", "a character device, not a regular file"},
	} {
		runRefused(t, c.look, "socklife: creating "+c.path+": "+c.why+" (--overwrite writes it anyway)", "", "record", "-o", c.path)
	}
	// What cannot be written in place is said at once, before attaching,
	// in one line with the kernel's reason (not ESPIPE or ENOSPC later).
	for _, c := range []struct {
		args []string
		why  string
	}{
		{[]string{"-o", "/proc/version"}, "illegal seek"}, // a regular file of root's
		{[]string{"-o", "/dev/full", "--overwrite"}, "no space left on device"},
		{[]string{"-o", "/dev/null", "--overwrite", "--max-size", "1M"}, "not a regular file, which --max-size would rename"},
	} {
		path := c.args[1]
		runRefused(t, path, "socklife: creating "+path+": ", c.why, append([]string{"record"}, c.args...)...)
	}
	// Asked to, record writes /dev/null, and leaves its mode 0666.
	before := testutil.FileFacts(t, "/dev/null")
	r := startRecord(t, "/dev/null", "--overwrite", "--port", "1")
	r.stop(t)
	if after := testutil.FileFacts(t, "/dev/null"); after != before {
		t.Errorf("/dev/null is now %s, was %s", after, before)
	}
}

// The ready file (every command that attaches writes it) is refused before
// attaching when it is another user's file, and left as it was.
func TestReadyFileOfAnotherUser(t *testing.T) {
	testutil.RequireRoot(t)
	ready := filepath.Join(t.TempDir(), "ready")
	if err := os.WriteFile(ready, []byte("theirs\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(ready, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	for _, command := range []string{"trace", "record", "top", "backlog"} {
		runRefused(t, ready, "socklife: the ready file "+ready+": a file of uid 65534, not of uid 0", "", command, "--ready-file", ready)
	}
}

// A user who cannot attach gets the capability error, and the file they
// named keeps what it held: nothing is emptied before the run can start.
func TestRecordCannotStartKeepsFile(t *testing.T) {
	testutil.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "nobody")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "keep.ndjson")
	if err := os.WriteFile(path, []byte("{\"kept\":true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, path} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	letOthersIn(t, filepath.Dir(dir))
	before := testutil.FileFacts(t, path)
	cmd := socklifeCmd(t, "record", "-o", path)
	runAsNobody(t, cmd) // makes the directories above searchable
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	want := "socklife: missing capabilities CAP_BPF and CAP_PERFMON (run as root)\n"
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || stderr.String() != want {
		t.Errorf("%v, stderr %q; want exit status 1 and %q", err, stderr.String(), want)
	}
	if after := testutil.FileFacts(t, path); after != before {
		t.Errorf("the file is now %s, was %s", after, before)
	}
}

// --max-files 2000000000 rotates by shifting the files that exist, not two
// billion names: the first rotation comes while connections still close,
// and SIGTERM stops the recording.
func TestRecordManyFilesAllowed(t *testing.T) {
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	path := filepath.Join(t.TempDir(), "rec.ndjson")
	r := startRecord(t, path, "--port", strconv.Itoa(int(testutil.Port(ln))), "--max-size", "4K", "--max-files", "2000000000")
	// A record is some 600 bytes: 4 KiB is full after a few connections.
	// Rotating used to try 2e9 renames first (minutes).
	testutil.WaitFor(t, 20*time.Second, "the first rotation", func() bool {
		loopbackConn(t, ln)
		_, err := os.Stat(path + ".1")
		return err == nil
	})
	r.stop(t)
	if recs := records(t, path+".1"); len(recs) == 0 {
		t.Errorf("%s.1 holds no record", path)
	}
}

// `socklife record | head -1`: head takes a record and goes; record must
// notice and end as trace does (exit 0, nothing more said), though no
// connection closes after.
func TestRecordExitsWhenReaderGoes(t *testing.T) {
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	run, r, _ := startToPipe(t, "record", "--port", strconv.Itoa(int(testutil.Port(ln))))
	loopbackConn(t, ln)
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "{") {
		t.Fatalf("first line %q, %v; want a record", line, err)
	}
	r.Close()
	if code := run.exitCode(t, 5*time.Second); code != 0 || run.stderr.Len() != 0 {
		t.Errorf("exit status %d, stderr %q; want 0 and nothing", code, run.stderr.String())
	}
}

// A reader that stops reading leaves record blocked in write(); SIGTERM
// must still stop it, saying so.
func TestRecordStopsWithBlockedReader(t *testing.T) {
	testutil.RequireRoot(t)
	ln := testutil.PlainListener(t)
	run, _, w := startToPipe(t, "record", "--port", strconv.Itoa(int(testutil.Port(ln))))
	// Records until the pipe has no free slot: its write end stops
	// polling writable (see TestTraceStopsWithBlockedReader).
	testutil.WaitFor(t, 20*time.Second, "the pipe to fill", func() bool {
		for range 20 {
			loopbackConn(t, ln)
		}
		return pipeFull(w) && writingStdout(t, run.cmd.Process.Pid)
	})
	run.cmd.Process.Signal(syscall.SIGTERM)
	if code := run.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0; stderr %q", code, run.stderr.String())
	}
	if !strings.Contains(run.stderr.String(), "records (stopped with the output blocked: its reader stopped reading)") {
		t.Errorf("stderr %q, want the summary noting the blocked output", run.stderr.String())
	}
}

// `socklife record > file` killed with SIGKILL, 20 times under churn,
// leaves only whole records each time, as -o FILE does: every write stays
// inside a page of the file, which the pages of the result show.
func TestRecordToStdoutFileKill9(t *testing.T) {
	testutil.RequireRoot(t)
	if testutil.Scaled(1) > 1 {
		// Whole lines are user space's doing, the same on every kernel,
		// and the host runs this; emulated, 20 runs of a churn that must
		// first write 64 KiB do not finish in any reasonable time.
		t.Skip("user-space writes: run on the host, not under emulation")
	}
	gen, err := churn.New(churn.Config{Listeners: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer gen.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := gen.Run(ctx, 1<<30); done <- err }()
	defer func() { cancel(); <-done }()
	dir := t.TempDir()
	for i := range 20 {
		path := filepath.Join(dir, "out"+strconv.Itoa(i))
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		r := startSocklife(t, f, "record", "--port", strconv.Itoa(int(gen.Port())))
		// Kill at a different moment each run.
		grow := int64(64<<10 + i*7919)
		testutil.WaitFor(t, 10*time.Second, "records", func() bool {
			st, err := f.Stat()
			return err == nil && st.Size() > grow
		})
		r.cmd.Process.Kill()
		r.wait(t, 10*time.Second)
		f.Close()
		records(t, path)
		data, _ := os.ReadFile(path)
		for end := 4096; end <= len(data); end += 4096 {
			if data[end-1] != '\n' {
				t.Fatalf("run %d: page ending at %d ends inside a record: a write crossed it", i, end)
			}
		}
	}
}
