package main

import (
	"os"
	"path/filepath"
	"testing"
)

// Every bad input of every command: exit 2, nothing on stdout, one line on
// stderr holding each of wants (expectBadInput).
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"trace", "-o", "xml"}, []string{`unknown output format "xml" (valid: table, json)`}},
		{[]string{"trace", "--state", "bogus"}, []string{"unknown state \"bogus\" (valid: all, big"}},
		{[]string{"trace", "-4", "-6"}, []string{"-4 and -6 exclude each other"}},
		{[]string{"trace", "--disable-hook", "uprobe"}, []string{`unknown hook "uprobe" (valid: fexit, kprobe, kretprobe, tp_btf, raw_tracepoint, tracepoint)`}},
		{[]string{"trace", "--port", "70000"}, []string{`bad --port "70000": want a port number`}},
		{[]string{"trace", "--port", "80,0"}, []string{"--port 0 matches nothing"}},
		{[]string{"trace", "--state", "time-wait"}, []string{"never the state of a transition"}},
		{[]string{"trace", "--duration", "-1s"}, []string{"--duration -1s is negative"}},
		{[]string{"trace", "--pid", "0"}, []string{"--pid 0 matches nothing; leave the flag out to see everything"}},
		{[]string{"trace", "--dport", "0"}, []string{"--dport 0 matches nothing"}},
		{[]string{"trace", "--netns", "0"}, []string{"--netns 0 matches nothing"}},
		{[]string{"record", "-o", "/dev/null", "--sport", "22,0"}, []string{"--sport 0 matches nothing"}},
		{[]string{"top", "--pid", "0"}, []string{"--pid 0 matches nothing"}},
		{[]string{"closewait", "--port", "0"}, []string{"--port 0 matches nothing"}},
		{[]string{"backlog", "--port", "0"}, []string{"--port 0 matches nothing"}},
		{[]string{"serve", "--web.config.file", "/nonexistent/web.yml"}, []string{"--web.config.file /nonexistent/web.yml:", "no such file"}},
		{[]string{"serve", "--max-processes", "0"}, []string{"--max-processes 0"}},
		{[]string{"serve", "--accept-wait", "sometimes"}, []string{`--accept-wait "sometimes": want auto, on or off`}},
		{[]string{"serve", "--port", "0"}, []string{"--port 0 matches nothing"}},
		{[]string{"info", "-o", "yaml"}, []string{`unknown output format "yaml" (valid: table, json)`}},
		// containers
		{[]string{"snapshot", "--runtime-endpoint", "tcp://node:10010"}, []string{`--runtime-endpoint: runtime endpoint "tcp://node:10010": only unix sockets`}},
		{[]string{"trace", "--runtime-endpoint", "run/containerd.sock"}, []string{"the socket path must be absolute"}},
		{[]string{"trace", "--pod", "shop/"}, []string{`bad --pod "shop/": want NAMESPACE/NAME, NAME or a pod uid`}},
		{[]string{"top", "--container", "a/b"}, []string{`bad --container "a/b"`}},
		{[]string{"top", "--by", "node"}, []string{`--by: unknown grouping "node" (valid: process, container, pod)`}},
		{[]string{"closewait", "--by", ""}, []string{"empty"}},
		{[]string{"snapshot", "--containers=false", "--pod", "web-0"}, []string{"which --containers=false turns off"}},
		{[]string{"backlog", "--by", "process"}, []string{`--by "process": want listener, container or pod`}},
		{[]string{"record", "--max-size", "10X"}, []string{`--max-size "10X" is not a positive size (like 4096, 64K, 100M, 1G)`}},
		{[]string{"record", "--max-size", "0"}, []string{`--max-size "0" is not a positive size`}},
		{[]string{"record", "--max-files", "0"}, []string{"--max-files 0: want at least 1"}},
		{[]string{"record", "-4", "-6"}, []string{"-4 and -6 exclude each other"}},
		{[]string{"record", "--port", "0"}, []string{"--port 0 matches nothing"}},
		{[]string{"record", "--state", "bogus"}, []string{`unknown state "bogus"`}},
		{[]string{"record", "-o", ""}, []string{`"-o, --output" flag: empty`}},
		// empty values, which once meant no filter or no rotation, and
		// floats that are not numbers
		{[]string{"closewait", "--growth", "NaN"}, []string{`"NaN" for "--growth" flag: not a finite number`}},
		{[]string{"closewait", "--growth", "Inf"}, []string{"not a finite number"}},
		{[]string{"closewait", "--growth", "-Inf", "--threshold", "3"}, []string{"not a finite number"}},
		{[]string{"trace", "--port", ""}, []string{`"--port" flag: empty: give a value, or leave the flag out`}},
		{[]string{"top", "--pid", ""}, []string{`"--pid" flag: empty`}},
		{[]string{"record", "-o", "/dev/null", "--max-size", ""}, []string{`"--max-size" flag: empty`}},
		{[]string{"snapshot", "--netns", " "}, []string{`"--netns" flag: empty`}},
		{[]string{"snapshot", "--src", ""}, []string{`"--src" flag: empty`}},
		{[]string{"closewait", "--threshold", "3", "--dst", ""}, []string{`"--dst" flag: empty`}},
		{[]string{"backlog", "--sport", ""}, []string{`"--sport" flag: empty`}},
		{[]string{"trace", "--dport", ""}, []string{`"--dport" flag: empty`}},
		{[]string{"record", "--comm", ""}, []string{`"--comm" flag: empty`}},
		{[]string{"trace", "--state", ""}, []string{`"--state" flag: empty`}},
		{[]string{"trace", "--disable-hook", ""}, []string{`"--disable-hook" flag: empty`}},
		{[]string{"trace", "--ready-file", ""}, []string{`"--ready-file" flag: empty`}},
		{[]string{"info", "-o", ""}, []string{`"-o, --output" flag: empty`}},
		// contradictions, once settled silently for one side
		{[]string{"record", "-o", "/dev/null", "--max-files", "3"}, []string{"--max-files keeps rotated files: give --max-size too"}},
		{[]string{"record", "--max-size", "1M"}, []string{"stdout cannot rotate: give -o FILE"}},
		{[]string{"record", "-o", "-", "--max-size", "1M", "--max-files", "2"}, []string{"stdout cannot rotate"}},
		{[]string{"snapshot", "--state", "time-wait", "-l"}, []string{"--state and -l both choose the states: give one"}},
		{[]string{"snapshot", "--state", "established", "-a"}, []string{"--state and -a both choose the states"}},
		// --comm as the kernel keeps it (15 bytes), in every command
		{[]string{"trace", "--comm", "systemd-resolved"}, []string{"cannot match: the kernel keeps 15 bytes"}},
		{[]string{"top", "--comm", "nginx|systemd-resolved"}, []string{`"systemd-resolved" cannot match: the kernel keeps 15 bytes`}},
		{[]string{"snapshot", "--comm", "nginx|systemd-resolved"}, []string{`"systemd-resolved" cannot match`}},
		{[]string{"record", "extra"}, []string{"bad filter", `"extra"`}}, // arguments are an ss filter
		{[]string{"backlog", "-o", "xml"}, []string{`unknown output format "xml" (valid: table, json)`}},
		{[]string{"backlog", "--interval", "0"}, []string{"--interval 0s is below 10ms"}},
		{[]string{"backlog", "--stall", "-1s"}, []string{"--stall -1s is below 1ms"}},
		{[]string{"backlog", "--for", "-2s"}, []string{"--for -2s is below 0s"}},
		{[]string{"backlog", "--for", "soon"}, []string{`invalid argument "soon"`}},
		{[]string{"backlog", "--disable-hook", "uprobe"}, []string{`unknown hook "uprobe"`}},
		{[]string{"backlog", "extra"}, []string{"bad filter", `"extra"`}},
		{[]string{"backlog", "--pid", "0"}, []string{"--pid 0 matches nothing"}},
		{[]string{"top", "-o", "yaml"}, []string{"table, json"}},
		{[]string{"top", "--interval", "1ms"}, []string{"at least 10ms"}},
		{[]string{"top", "--port", "8080,x"}, []string{`bad --port "x"`}}, // a list, like everywhere; once "give one of them"
		{[]string{"closewait", "--for", "1s"}, []string{"nothing to watch for"}},
		{[]string{"closewait", "--threshold", "5", "--for", "-1s"}, []string{"positive duration"}},
		{[]string{"closewait", "--threshold", "5", "-o", "xml"}, []string{"table, json"}},
		{[]string{"closewait", "--threshold", "5", "--min-age", "-1s"}, []string{"--min-age -1s is negative"}},
		{[]string{"closewait", "--growth", "10", "--for", "30s"}, []string{"--growth is judged over --window (1m0s), which --for 30s ends before"}},
		{[]string{"top", "--min-age", "-2s"}, []string{"--min-age -2s is negative"}},
		{[]string{"top", "--port", "0"}, []string{"--port 0 matches nothing"}},
		{[]string{"closewait", "--threshold", "5", "--pid", "0"}, []string{"--pid 0 matches nothing"}},
		{[]string{"snapshot", "--state", "establised"}, []string{`unknown state "establised"`, "established", "close-wait", "synchronized"}},
		{[]string{"snapshot", "-o", "yaml"}, []string{`unknown output format "yaml"`, "table, json, ndjson"}},
		{[]string{"snapshot", "--port", "70000"}, []string{`bad --port "70000"`, "0-65535"}},
		{[]string{"snapshot", "--dport", "http"}, []string{`bad --dport "http"`}},
		{[]string{"snapshot", "--src", "10.0.0.0/33"}, []string{`bad --src`, `"10.0.0.0/33"`}},
		{[]string{"snapshot", "--dst", "not-an-ip"}, []string{`bad --dst`, `"not-an-ip"`}},
		{[]string{"snapshot", "--pid", "abc"}, []string{`bad --pid "abc"`}},
		{[]string{"snapshot", "--pid", "1", "--no-process"}, []string{"drop --no-process"}},
		{[]string{"snapshot", "-4", "-6"}, []string{"-4 and -6"}},
		{[]string{"snapshot", "--exposed", "--summary"}, []string{"cannot be combined"}},
		{[]string{"snapshot", "--bogus"}, []string{"unknown flag: --bogus"}},
		{[]string{"snapshot", "--exposed", "-x"}, []string{"--exposed covers TCP and UDP"}},
		{[]string{"snapshot", "--summary", "--state", "listening"}, []string{"choose their own states"}},
		{[]string{"nosuchcmd"}, []string{`unknown command "nosuchcmd"`}},
		{[]string{"snapshot", "extra-arg"}, []string{"bad filter", `"extra-arg"`}},
		{[]string{"snapshot", "-t", "(dport", "=", ":443", ")"}, []string{"bad filter", `"(dport"`}},
		{[]string{"snapshot", "-t", "state", "establised"}, []string{"bad filter", `"establised"`}},
		{[]string{"snapshot", "-t", "dport", "=", ":443", "or"}, []string{"bad filter"}},
		{[]string{"snapshot", "--state", "listening", "state", "established"}, []string{"no state in common"}},
		{[]string{"snapshot", "--summary", "exclude", "listening"}, []string{"choose their own states"}},
		{[]string{"trace", "dev", "=", "lo"}, []string{`bad filter: "dev" needs a socket's own facts`}},
		{[]string{"top", "state", "established"}, []string{"no states to choose"}},
		// ss habits that mean something else here say what to type
		{[]string{"snapshot", "-tm"}, []string{"-m: socket memory", "snapshot -i -o json"}},
		{[]string{"snapshot", "-te"}, []string{"-e: ss's extended details", "-o json"}},
		{[]string{"snapshot", "-tno"}, []string{"socklife's -o is the output format"}},
	} {
		expectBadInput(t, tc.args, tc.wants...)
	}
}

// A --web.config.file that exporter-toolkit refuses is bad input said
// before anything is attached, on one line however many the YAML parser's
// message has.
func TestServeBadWebConfig(t *testing.T) {
	for _, body := range []string{
		"tls_server_config:\n  cert_file: [\n",                     // not YAML
		"tls_server_config:\n  cert_file: /nonexistent/cert.pem\n", // no key
		"basic_auth_users:\n  alice: not-a-bcrypt-hash\n",
		"bogus_field: 1\nother: 2\n", // two unknown fields: a two-line message
	} {
		path := filepath.Join(t.TempDir(), "web.yml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		expectBadInput(t, []string{"serve", "--web.config.file", path}, "socklife: --web.config.file "+path+": ")
	}
}
