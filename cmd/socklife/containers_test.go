package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socklife/socklife/internal/render"
	"github.com/socklife/socklife/internal/testutil"
)

// fakeContainer is a cgroup named as a runtime names its containers, with
// a workload process born in it.
type fakeContainer struct {
	name    string // the naming pattern, for messages
	id      string // the 64-hex container id in the path
	podUID  string // "" outside Kubernetes
	runtime string // as JSON names it; "" for null
	cgroup  string // its path from the hierarchy's root
	work    *testutil.Workload
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startFakeContainers makes one cgroup for each naming pattern socklife
// knows (the runtimes' own: containerd, CRI-O, Docker, Podman; Kubernetes'
// systemd and cgroupfs drivers, each QoS class) under a directory of the
// test's own, and starts a workload in each.
func startFakeContainers(t *testing.T) []*fakeContainer {
	t.Helper()
	testutil.RequireRoot(t)
	top := fmt.Sprintf("socklife-test-%d-%s", os.Getpid(), randomHex(t, 8))
	var cs []*fakeContainer
	add := func(name, runtime string, pod bool, pathFor func(id, uid, uidSystemd string) string) {
		c := &fakeContainer{name: name, id: randomHex(t, 64), runtime: runtime}
		uid := ""
		if pod {
			u := randomHex(t, 32)
			uid = u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
			c.podUID = uid
		}
		c.cgroup = "/" + path.Join(top, pathFor(c.id, uid, strings.ReplaceAll(uid, "-", "_")))
		cs = append(cs, c)
	}
	add("containerd, systemd driver, burstable", "containerd", true, func(id, uid, u string) string {
		return "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + u + ".slice/cri-containerd-" + id + ".scope"
	})
	add("CRI-O, systemd driver, besteffort", "cri-o", true, func(id, uid, u string) string {
		return "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + u + ".slice/crio-" + id + ".scope"
	})
	add("containerd, systemd driver, guaranteed", "containerd", true, func(id, uid, u string) string {
		return "kubepods.slice/kubepods-pod" + u + ".slice/cri-containerd-" + id + ".scope"
	})
	add("cgroupfs driver, burstable", "", true, func(id, uid, u string) string {
		return "kubepods/burstable/pod" + uid + "/" + id
	})
	add("cgroupfs driver, besteffort", "", true, func(id, uid, u string) string {
		return "kubepods/besteffort/pod" + uid + "/" + id
	})
	add("cgroupfs driver, guaranteed", "", true, func(id, uid, u string) string {
		return "kubepods/pod" + uid + "/" + id
	})
	add("Docker, systemd driver", "docker", false, func(id, uid, u string) string {
		return "system.slice/docker-" + id + ".scope"
	})
	add("Docker, cgroupfs driver", "docker", false, func(id, uid, u string) string {
		return "docker/" + id
	})
	add("Podman", "podman", false, func(id, uid, u string) string {
		return "machine.slice/libpod-" + id + ".scope"
	})
	// Cleanups run last-registered first: the cgroups are removed after
	// the workloads in them have been killed.
	for _, c := range cs {
		dir, _ := testutil.Cgroup(t, c.cgroup)
		c.work = testutil.StartWorkload(t, dir, "ctr-"+c.id[:8], false)
	}
	return cs
}

// checkContainer checks a "container" object against what the test made.
func checkContainer(t *testing.T, what string, got *render.ContainerJSON, want *fakeContainer) {
	t.Helper()
	switch {
	case got == nil:
		t.Errorf("%s (%s): no container", what, want.name)
		return
	case got.ID != want.id:
		t.Errorf("%s (%s): container id %q, want %q", what, want.name, got.ID, want.id)
	case got.Cgroup != want.cgroup:
		t.Errorf("%s (%s): cgroup %q, want %q", what, want.name, got.Cgroup, want.cgroup)
	case (got.Runtime == nil) != (want.runtime == "") || got.Runtime != nil && *got.Runtime != want.runtime:
		t.Errorf("%s (%s): runtime %v, want %q", what, want.name, got.Runtime, want.runtime)
	case want.podUID == "" && got.Pod != nil:
		t.Errorf("%s (%s): pod %+v, want none", what, want.name, *got.Pod)
	case want.podUID != "" && (got.Pod == nil || got.Pod.UID != want.podUID):
		t.Errorf("%s (%s): pod %+v, want uid %s", what, want.name, got.Pod, want.podUID)
	}
}

// Every naming pattern, a real process in a real cgroup: snapshot names the
// container and pod of its listener, of the connections it accepted and of
// the one it made, and --container and --pod select exactly those.
func TestSnapshotNamesContainers(t *testing.T) {
	cs := startFakeContainers(t)
	host := testutil.PlainListener(t)
	for _, c := range cs {
		conn, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(c.work.Port))))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c.work.Connect(t, testutil.Port(host))
	}
	// the workload's sockets, as "local remote" keys
	mine := func(c *fakeContainer, socks []render.SocketJSON) []string {
		var keys []string
		for _, s := range socks {
			if slices.ContainsFunc(*s.Processes, func(p render.ProcessJSON) bool { return int(p.PID) == c.work.PID }) {
				keys = append(keys, s.Local+" "+s.Remote)
			}
		}
		slices.Sort(keys)
		return keys
	}
	out, stderr, code := runCLI(t, "snapshot", "-t", "-a", "-o", "ndjson")
	if code != 0 {
		t.Fatalf("snapshot: exit %d: %s", code, stderr)
	}
	all := decodeNDJSON(t, out)
	for _, c := range cs {
		want := mine(c, all)
		if len(want) != 3 { // listener, accepted, connected
			t.Errorf("%s: the workload holds %v, want a listener and two connections", c.name, want)
		}
		for _, s := range all {
			if slices.Contains(want, s.Local+" "+s.Remote) {
				checkContainer(t, "snapshot "+s.State+" "+s.Local, s.Container, c)
			}
		}
		selectors := [][]string{{"--container", c.id[:12]}}
		if c.podUID != "" {
			selectors = append(selectors, []string{"--pod", c.podUID})
		}
		for _, sel := range selectors {
			out, stderr, code := runCLI(t, append([]string{"snapshot", "-t", "-a", "-o", "ndjson"}, sel...)...)
			if code != 0 {
				t.Fatalf("snapshot %v: exit %d: %s", sel, code, stderr)
			}
			socks := decodeNDJSON(t, out)
			var got []string
			for _, s := range socks {
				got = append(got, s.Local+" "+s.Remote)
			}
			slices.Sort(got)
			// the host's end of each connection is the host's: not selected
			if !slices.Equal(got, want) {
				t.Errorf("%s: snapshot %v selected %v, want %v", c.name, sel, got, want)
			}
		}
	}
	// A table has Container and Pod columns, with the short id.
	out, _, _ = runCLI(t, "snapshot", "-tl", "--container", cs[0].id[:12])
	if lines := strings.Split(out, "\n"); !strings.Contains(lines[0], "Container") || !strings.Contains(lines[0], "Pod") ||
		!strings.Contains(out, " "+cs[0].id[:12]+" ") || !strings.Contains(out, cs[0].podUID) {
		t.Errorf("snapshot -tl --container: no Container and Pod columns naming %s:\n%s", cs[0].id[:12], out)
	}
}

// A socket created in a container and then held only by a host process
// keeps the container: it is the socket's cgroup, not its holder's, and
// so is every connection accepted from it.
func TestSocketKeepsItsContainer(t *testing.T) {
	testutil.RequireRoot(t)
	c := &fakeContainer{name: "Docker, systemd driver", runtime: "docker", id: randomHex(t, 64)}
	c.cgroup = fmt.Sprintf("/socklife-test-%d-%s/system.slice/docker-%s.scope", os.Getpid(), randomHex(t, 8), c.id)
	dir, _ := testutil.Cgroup(t, c.cgroup)
	var ln net.Listener
	testutil.InCgroup(t, dir, func() { ln = testutil.PlainListener(t) })
	port := testutil.Port(ln)
	tr := startSocklife(t, nil, "trace", "-o", "json", "--port", strconv.Itoa(int(port)))
	client, server := testutil.Pair(t, ln)
	client.Close()
	server.Close()
	testutil.WaitFor(t, 20*time.Second, "the accepted connection's CLOSE", func() bool {
		return strings.Contains(tr.stdout.String(), `"new":"CLOSE"`)
	})
	lines := tr.stop(t)
	var accepted int
	for _, ev := range jsonLines[traceEvent](t, strings.Join(lines, "\n")) {
		if ev.Local != ln.Addr().String() {
			continue // the client's side: made on the host
		}
		accepted++
		checkContainer(t, "trace "+ev.Old+"->"+ev.New, ev.Container, c)
	}
	if accepted == 0 {
		t.Fatalf("no event of the accepted connection in %q", lines)
	}
	out, _, _ := runCLI(t, "snapshot", "-tl", "-o", "ndjson", "--sport", strconv.Itoa(int(port)))
	socks := decodeNDJSON(t, out)
	if len(socks) != 1 {
		t.Fatalf("snapshot of the listener: %q", out)
	}
	checkContainer(t, "snapshot of a listener held by the host", socks[0].Container, c)
	if p := *socks[0].Processes; len(p) != 1 || int(p[0].PID) != os.Getpid() {
		t.Errorf("listener held by %+v, want this test (pid %d) alone", p, os.Getpid())
	}
}

// traceEvent is what these tests read of a trace -o json line.
type traceEvent struct {
	Local, Remote string
	Old, New      string
	Container     *render.ContainerJSON
}

// containerSockets says which container a workload's connection is in, by
// its local port: the workloads' listeners and the connections they
// accepted and made. Anything else is the host's.
func containerSockets(cs []*fakeContainer) map[uint16]*fakeContainer {
	m := map[uint16]*fakeContainer{}
	for _, c := range cs {
		m[c.work.Port] = c
	}
	return m
}

// A real process in each kind of container, listening, accepting and
// connecting: trace, record, top, closewait and backlog each name its
// container and pod; the host's side of each connection stays the
// host's; --container and --pod select exactly one container's sockets.
func TestCommandsNameContainers(t *testing.T) {
	cs := startFakeContainers(t)
	host := testutil.PlainListener(t)
	hostPort := testutil.Port(host)
	go func() { // the host's server closes at once: the workloads' clients end
		for {
			c, err := host.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	path := t.TempDir() + "/conns.ndjson"
	trace := startSocklife(t, nil, "trace", "-o", "json")
	one := startSocklife(t, nil, "trace", "-o", "json", "--container", cs[0].id[:12])
	var pod *fakeContainer
	for _, c := range cs[1:] {
		if c.podUID != "" {
			pod = c
			break
		}
	}
	onePod := startSocklife(t, nil, "trace", "-o", "json", "--pod", pod.podUID)
	rec := startRecord(t, path)
	top := startSocklife(t, nil, "top", "-o", "json", "--interval", "200ms", "--by", "pod")
	bl := startSocklife(t, nil, "backlog", "-o", "json", "--interval", "300ms", "--by", "pod")
	blOne := startSocklife(t, nil, "backlog", "-o", "json", "--interval", "300ms", "--container", cs[1].id[:12])

	clientPorts := map[uint16]*fakeContainer{}
	for _, c := range cs {
		conn, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(c.work.Port))))
		if err != nil {
			t.Fatal(err)
		}
		conn.Close() // the workload keeps its end: CLOSE_WAIT
		clientPorts[c.work.Connect(t, hostPort)] = c
		c.work.CloseAll(t)
	}
	testutil.WaitFor(t, 30*time.Second, "a record of every workload's connection", func() bool {
		n := 0
		for _, r := range records(t, path) {
			if local, _ := r["local"].(string); local != "" {
				if _, ok := clientPorts[clientPort(local)]; ok {
					n++
				}
			}
		}
		return n == len(cs)
	})

	// trace: every event of a workload's socket names its container;
	// the host's ends name none.
	seen := map[*fakeContainer]int{}
	listeners := containerSockets(cs)
	for _, ev := range jsonLines[traceEvent](t, strings.Join(trace.stop(t), "\n")) {
		local, remote := clientPort(ev.Local), clientPort(ev.Remote)
		c := listeners[local] // the listener and its children
		if cc := clientPorts[local]; cc != nil && remote == hostPort {
			c = cc // its own connection
		}
		if c == nil {
			if listeners[remote] != nil && ev.Container != nil {
				t.Errorf("trace: the host's end %s -> %s in container %+v", ev.Local, ev.Remote, *ev.Container)
			}
			continue
		}
		seen[c]++
		checkContainer(t, "trace "+ev.Old+"->"+ev.New+" "+ev.Local, ev.Container, c)
	}
	for _, c := range cs {
		if seen[c] == 0 {
			t.Errorf("trace: no event of %s's sockets", c.name)
		}
	}
	// trace --container, --pod: that container's sockets only, and all of
	// its events (listener's children and its own connection)
	for _, sel := range []struct {
		run  *socklifeRun
		want *fakeContainer
	}{{one, cs[0]}, {onePod, pod}} {
		evs := jsonLines[traceEvent](t, strings.Join(sel.run.stop(t), "\n"))
		if len(evs) == 0 {
			t.Errorf("trace selecting %s: no events", sel.want.name)
		}
		for _, ev := range evs {
			checkContainer(t, "selected trace "+ev.Old+"->"+ev.New+" "+ev.Local, ev.Container, sel.want)
		}
	}

	// record: the workloads' client connections are theirs
	rec.stop(t)
	for _, r := range records(t, path) {
		local, _ := r["local"].(string)
		c := clientPorts[clientPort(local)]
		if c == nil {
			continue
		}
		b, _ := json.Marshal(r["container"])
		var got *render.ContainerJSON
		json.Unmarshal(b, &got)
		checkContainer(t, "record "+local, got, c)
	}

	// top, by pod: a frame with every workload's CLOSE_WAIT socket and
	// listener, each row naming the container (a pod's row: its pod)
	testutil.WaitFor(t, 20*time.Second, "a top frame with every workload", func() bool {
		frames := jsonLines[render.FrameJSON](t, linesSoFar(top.stdout.String()))
		return len(frames) > 0 && topHasAll(frames[len(frames)-1], cs)
	})
	frames := jsonLines[render.FrameJSON](t, strings.Join(top.stop(t), "\n"))
	checkTopFrame(t, frames[len(frames)-1], cs)

	// backlog: each workload's listener
	reports := backlogReports(t, strings.Join(bl.stop(t), "\n"))
	last := map[uint16]render.BacklogListenerJSON{}
	for _, r := range reports {
		for _, l := range r.Listeners {
			last[clientPort(l.Local)] = l
		}
	}
	for _, c := range cs {
		l, ok := last[c.work.Port]
		if !ok {
			t.Errorf("backlog: no report of %s's listener", c.name)
			continue
		}
		checkContainer(t, "backlog listener "+l.Local, l.Container, c)
	}
	// backlog --container: that container's listener alone
	n := 0
	for _, r := range backlogReports(t, strings.Join(blOne.stop(t), "\n")) {
		for _, l := range r.Listeners {
			n++
			checkContainer(t, "backlog --container listener "+l.Local, l.Container, cs[1])
		}
	}
	if n == 0 {
		t.Errorf("backlog --container %s: no listener reported", cs[1].id[:12])
	}

	// closewait, by pod: the workloads' CLOSE_WAIT sockets, grouped
	cw := socklifeCmd(t, append([]string{"closewait", "-o", "json", "--threshold", "1", "--min-age", "0", "--by", "pod", "--for", "30s", "--interval", "100ms"}, disableHookArgs()...)...)
	out, err := cw.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("closewait: %v, want exit status 1 (an alert)", err)
	}
	var verdict struct {
		Offenders []render.CloseWaitProcessJSON `json:"offenders"`
	}
	if err := json.Unmarshal(out, &verdict); err != nil {
		t.Fatalf("closewait -o json: %v: %s", err, out)
	}
	rows := map[string]render.CloseWaitProcessJSON{}
	for _, o := range verdict.Offenders {
		if o.Container != nil {
			rows[o.Container.ID] = o
			if o.Container.Pod != nil {
				rows[o.Container.Pod.UID] = o
			}
		}
	}
	for _, c := range cs {
		key := c.id
		if c.podUID != "" {
			key = c.podUID
		}
		o, ok := rows[key]
		switch {
		case !ok:
			t.Errorf("closewait --by pod: no row for %s in %s", c.name, out)
		case o.Count < 1 || o.Processes != 1:
			t.Errorf("closewait --by pod: %s: count %d, processes %d; want 1 and 1", c.name, o.Count, o.Processes)
		case c.podUID == "":
			checkContainer(t, "closewait row", o.Container, c)
		case o.Container.Pod == nil || o.Container.Pod.UID != c.podUID:
			t.Errorf("closewait --by pod: %s: row %+v", c.name, o.Container)
		}
	}
}

// topHasAll says whether a frame has every workload's CLOSE_WAIT row and listener.
func topHasAll(f render.FrameJSON, cs []*fakeContainer) bool {
	ids := map[string]bool{}
	for _, p := range f.CloseWait.Processes {
		if p.Container != nil {
			ids[p.Container.ID] = true
			if p.Container.Pod != nil {
				ids[p.Container.Pod.UID] = true
			}
		}
	}
	ports := map[uint16]bool{}
	for _, l := range f.Listeners {
		ports[clientPort(l.Local)] = true
	}
	for _, c := range cs {
		if !ports[c.work.Port] || !ids[c.id] && !ids[c.podUID] {
			return false
		}
	}
	return true
}

func checkTopFrame(t *testing.T, f render.FrameJSON, cs []*fakeContainer) {
	t.Helper()
	if !topHasAll(f, cs) {
		t.Fatalf("top: the last frame lacks some workload: %+v", f)
	}
	for _, l := range f.Listeners {
		for _, c := range cs {
			if clientPort(l.Local) == c.work.Port {
				checkContainer(t, "top listener "+l.Local, l.Container, c)
			}
		}
	}
	for _, p := range f.CloseWait.Processes {
		for _, c := range cs {
			if p.Container != nil && p.Container.Pod != nil && c.podUID == p.Container.Pod.UID && c.podUID != "" {
				if p.Processes != 1 {
					t.Errorf("top --by pod: %s: %d processes, want 1", c.name, p.Processes)
				}
			} else if p.Container != nil && p.Container.ID == c.id {
				checkContainer(t, "top CLOSE_WAIT row", p.Container, c)
			}
		}
	}
}

// info says which cgroup layout it reads and counts the containers in it:
// on this host hybrid (v2 at /sys/fs/cgroup/unified), in the kernel-matrix
// VMs unified; every fake container counts, a pod's own cgroup does not.
func TestInfoCgroups(t *testing.T) {
	before := infoCgroup(t)
	cs := startFakeContainers(t)
	after := infoCgroup(t)
	h, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	want, mount := "unified", "/sys/fs/cgroup"
	if strings.Contains(string(h), " - cgroup cgroup ") {
		want, mount = "hybrid", "/sys/fs/cgroup/unified"
	}
	if after.Layout != want || after.Mount != mount {
		t.Errorf("info: layout %q at %q, want %q at %q", after.Layout, after.Mount, want, mount)
	}
	if after.Containers-before.Containers != len(cs) {
		t.Errorf("info: %d containers before, %d after starting %d", before.Containers, after.Containers, len(cs))
	}
}

func infoCgroup(t *testing.T) cgroupInfo {
	t.Helper()
	out, stderr, code := runCLI(t, "info", "-o", "json")
	if code != 0 {
		t.Fatalf("info: exit %d: %s", code, stderr)
	}
	var info struct {
		Cgroup cgroupInfo `json:"cgroup"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	return info.Cgroup
}

// --container by id is applied in the kernel, to the containers there are
// now and to those that start later: trace started before the container
// sees its connections once it runs.
func TestTraceFollowsNewContainer(t *testing.T) {
	testutil.RequireRoot(t)
	c := &fakeContainer{name: "containerd, started after trace", runtime: "containerd", id: randomHex(t, 64)}
	u := randomHex(t, 32)
	c.podUID = u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
	c.cgroup = fmt.Sprintf("/socklife-test-%d-%s/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope",
		os.Getpid(), randomHex(t, 8), strings.ReplaceAll(c.podUID, "-", "_"), c.id)
	tr := startSocklife(t, nil, "trace", "-o", "json", "--container", c.id[:12])
	dir, _ := testutil.Cgroup(t, c.cgroup)
	c.work = testutil.StartWorkload(t, dir, "late-ctr", false)
	port := strconv.Itoa(int(c.work.Port))
	testutil.WaitFor(t, 30*time.Second, "events of the new container's connections", func() bool {
		conn, err := net.Dial("tcp4", "127.0.0.1:"+port)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		return strings.Contains(tr.stdout.String(), `"local":"127.0.0.1:`+port+`"`)
	})
	for _, ev := range jsonLines[traceEvent](t, strings.Join(tr.stop(t), "\n")) {
		checkContainer(t, "trace "+ev.Old+"->"+ev.New+" "+ev.Local, ev.Container, c)
	}
}

// Names come from the runtime: a real Podman serving the Docker Engine API
// names a container it created (running it is refused on this host, so the
// test's workload runs in a cgroup named as Podman names that container's),
// and --container and --pod take those names.
func TestContainerNamesFromRuntime(t *testing.T) {
	p := testutil.StartPodman(t)
	const uid = "6f1c2a3e-1b5d-4c8e-9a0f-2d4e6b8a0c1e"
	id := p.Run(t, "create", "--name", "k8s_web_web-0_shop_6f1c_0",
		"--label", "io.kubernetes.container.name=web",
		"--label", "io.kubernetes.pod.name=web-0",
		"--label", "io.kubernetes.pod.namespace=shop",
		"--label", "io.kubernetes.pod.uid="+uid, testutil.PauseImage)
	c := &fakeContainer{name: "Podman, named by its API", runtime: "podman", id: id, podUID: uid} // the pod uid from the API
	c.cgroup = fmt.Sprintf("/socklife-test-%d-%s/machine.slice/libpod-%s.scope", os.Getpid(), randomHex(t, 8), id)
	dir, _ := testutil.Cgroup(t, c.cgroup)
	c.work = testutil.StartWorkload(t, dir, "named-ctr", false)
	// a busy machine's podman may take seconds: the answer is what this
	// test checks, not the product's patience
	endpoint := "--runtime-endpoint=unix://" + p.Sock
	patience := "--runtime-timeout=" + testutil.Scaled(30*time.Second).String()
	for _, sel := range [][]string{{"--container", "web"}, {"--pod", "shop/web-0"}, {"--pod", "web-0"}} {
		out, stderr, code := runCLI(t, append([]string{"snapshot", "-tl", "-o", "ndjson", endpoint, patience}, sel...)...)
		if code != 0 {
			t.Fatalf("snapshot %v: exit %d: %s", sel, code, stderr)
		}
		socks := decodeNDJSON(t, out)
		if len(socks) != 1 || socks[0].LocalPort != c.work.Port {
			t.Fatalf("snapshot -tl %v: %+v, want the workload's listener alone", sel, socks)
		}
		got := socks[0].Container
		checkContainer(t, "snapshot "+strings.Join(sel, " "), got, c)
		if got.Name == nil || *got.Name != "web" || got.Pod == nil || got.Pod.Name == nil || *got.Pod.Name != "web-0" ||
			got.Pod.Namespace == nil || *got.Pod.Namespace != "shop" || got.Pod.UID != uid {
			t.Errorf("names: %+v, pod %+v; want web in shop/web-0", got, got.Pod)
		}
	}
	// a table names the container and its pod as a user knows them
	out, _, _ := runCLI(t, "snapshot", "-tl", endpoint, patience, "--pod", "shop/web-0")
	if !strings.Contains(out, " web ") || !strings.Contains(out, "shop/web-0") {
		t.Errorf("snapshot table without the names:\n%s", out)
	}
}

// A --runtime-endpoint that does not answer is an error before anything
// runs (exit 1, one line): asked for by name, a runtime that is not there
// is not a quiet lack of names.
func TestRuntimeEndpointNotAnswering(t *testing.T) {
	silent := t.TempDir() + "/silent.sock"
	ln, err := net.Listen("unix", silent) // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, endpoint := range []string{t.TempDir() + "/absent.sock", "unix://" + silent} {
		stdout, stderr, code := runCLI(t, "snapshot", "-tl", "--runtime-endpoint", endpoint, "--runtime-timeout", "200ms")
		if code != 1 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "does not answer as a CRI or Docker API") {
			t.Errorf("--runtime-endpoint %s: exit %d, stdout %q, stderr %q; want exit 1 and one line", endpoint, code, stdout, stderr)
		}
	}
}

// In a container's own cgroup namespace (a pod's on cgroup v2), with the
// host's cgroupfs mounted as a DaemonSet mounts it: the hierarchy is found
// above the namespace's root, a socket's container is named by its cgroup
// id, and info says so.
func TestContainersInPrivateCgroupNamespace(t *testing.T) {
	cs := startFakeContainers(t)[:1]
	agent, _ := testutil.Cgroup(t, fmt.Sprintf("/socklife-test-%d-%s/kubepods.slice/kubepods-pod%s.slice/cri-containerd-%064x.scope",
		os.Getpid(), randomHex(t, 8), strings.ReplaceAll("0b5a1c2e-1111-4222-8333-944455556666", "-", "_"), 77))
	cg, err := os.Open(agent)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	run := func(args ...string) string {
		t.Helper()
		// born in the agent's cgroup, then a cgroup namespace rooted there
		// (runInOwnCgroupNS)
		cmd := socklifeCmd(t, args...)
		cmd.Env = append(cmd.Env, ownCgroupNSEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("socklife %v in its own cgroup namespace: %v: %s", args, err, stderr.String())
		}
		return string(out)
	}
	var info struct {
		Cgroup cgroupInfo `json:"cgroup"`
	}
	if err := json.Unmarshal([]byte(run("info", "-o", "json")), &info); err != nil {
		t.Fatal(err)
	}
	// the agent's cgroup is 4 levels down (test dir, kubepods.slice, pod, container)
	if info.Cgroup.Note != "" || info.Cgroup.Containers < len(cs) || info.Cgroup.Depth != 4 {
		t.Errorf("info in a private cgroup namespace: %+v, want it 4 levels below the root", info.Cgroup)
	}
	socks := decodeNDJSON(t, run("snapshot", "-tl", "-o", "ndjson", "--container", cs[0].id[:12]))
	if len(socks) != 1 || socks[0].LocalPort != cs[0].work.Port {
		t.Fatalf("snapshot --container in a private cgroup namespace: %+v", socks)
	}
	checkContainer(t, "snapshot in a private cgroup namespace", socks[0].Container, cs[0])
}

// ownCgroupNSEnv makes the test binary run socklife (asMainEnv) as a child
// in a cgroup namespace of its own, rooted at the cgroup this process was
// born in: a clone's new cgroup namespace is rooted at its parent's cgroup,
// so it takes two processes, as a container runtime's shim and its
// container do.
const ownCgroupNSEnv = "SOCKLIFE_TEST_OWN_CGROUPNS"

func runInOwnCgroupNS() int {
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), ownCgroupNSEnv+"=0")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWCGROUP}
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode()
	case err != nil:
		fmt.Fprintln(os.Stderr, "running in a cgroup namespace of its own:", err)
		return 1
	}
	return 0
}
