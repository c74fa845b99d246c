// Package container attributes sockets and events to the container and pod
// they belong to.
package container

import "strings"

// Runtime names a container runtime as the cgroup path shows it.
type Runtime string

// The runtimes whose cgroup names ParsePath knows.
const (
	Containerd Runtime = "containerd"
	CRIO       Runtime = "cri-o"
	Docker     Runtime = "docker"
	Podman     Runtime = "podman"
)

// QoS is a Kubernetes pod's quality-of-service class, as its cgroup's place
// in the kubepods hierarchy shows it.
type QoS string

// The QoS classes; a path outside Kubernetes has none ("").
const (
	Guaranteed QoS = "guaranteed"
	Burstable  QoS = "burstable"
	BestEffort QoS = "besteffort"
)

// Path is what a cgroup v2 path says about the container it belongs to.
//
// Every field is a claim made by a name, not a fact: anyone who may create
// cgroups in a subtree (a rootless user's delegated user@UID.service, a
// container with a writable cgroup namespace) can name one
// docker-<any id>.scope. ParsePath only guarantees the shape of what it
// returns; the runtime's API is what confirms an id belongs to a container.
type Path struct {
	// Runtime is the runtime the path's naming convention belongs to; empty
	// when the path does not say, as with the cgroupfs driver's bare
	// /kubepods/<qos>/pod<uid>/<id>, which containerd and Docker both use.
	Runtime Runtime
	// ID is the full container id: 64 lowercase hex digits; empty for a
	// path that is a pod's cgroup (or a runtime's monitor under it).
	ID string
	// PodUID is the Kubernetes pod uid in its canonical form: a UUID with
	// dashes, or the 32 hex digits the kubelet gives a static pod.
	PodUID string
	// QoS is the pod's class, set whenever PodUID is.
	QoS QoS
}

// ParsePath reads a cgroup path (relative to the cgroup v2 root, as in the
// path field of /proc/PID/cgroup, or an absolute /sys/fs/cgroup/...
// directory, which on a hybrid host is under /sys/fs/cgroup/unified) and says
// which container and pod it belongs to. ok is false for host cgroups
// (/, init.scope, system.slice/ssh.service, user sessions, the runtimes'
// own daemons) and for anything whose names do not have the exact shape
// of a runtime's convention.
//
// The innermost container wins: a kind or minikube node is itself a
// container (/docker/<node>/kubepods/..., /actions_job/<job>/...), and
// the process belongs to the pod inside it; a sub-cgroup a container makes
// for itself (libpod-<id>.scope/container, docker-<id>.scope/init.scope)
// still belongs to that container. The pod is taken only from the cgroup
// that directly holds the container, so a container nested deeper inside a
// pod's container (docker in docker) gets no pod.
//
// Runtime monitors are not containers: crio-conmon-<id> and
// libpod-conmon-<id> run conmon in the host's namespaces, so a conmon
// cgroup inside a pod gives the pod alone (no ID), and one outside a pod
// (CRI-O's default conmon_cgroup = "system.slice", Podman's machine.slice)
// is a host cgroup.
func ParsePath(cgroupPath string) (Path, bool) {
	var parts []string
	for _, p := range strings.Split(cgroupPath, "/") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	for i := len(parts) - 1; i >= 0; i-- {
		if p, ok := containerAt(parts, i); ok {
			return p, true
		}
		if p, ok := podAt(parts, i); ok {
			return p, true
		}
	}
	return Path{}, false
}

// scopePrefixes are the systemd scope (and cgroupfs directory) prefixes of
// each runtime's containers. Monitors (crio-conmon-, libpod-conmon-) do not
// match because "conmon-" is not hex.
var scopePrefixes = []struct {
	prefix  string
	runtime Runtime
}{
	{"cri-containerd-", Containerd},
	{"crio-", CRIO},
	{"docker-", Docker},
	{"libpod-", Podman},
}

// bareParents are the cgroupfs parents under which a directory named by the
// bare id is a container: Docker's default cgroup parent, and the one the
// GitHub Actions runner passes to Docker for job containers.
var bareParents = map[string]Runtime{
	"docker":      Docker,
	"actions_job": Docker,
}

// containerAt says whether parts[i] names a container, and with its pod
// when parts[i-1] is that pod's cgroup.
func containerAt(parts []string, i int) (Path, bool) {
	name := parts[i]
	// <pod slice>:<prefix>:<id>, the literal systemd-style cgroupsPath a
	// containerd with the cgroupfs manager makes under a systemd kubelet.
	if slice, rest, ok := strings.Cut(name, ":"); ok {
		prefix, id, ok := strings.Cut(rest, ":")
		if !ok || !isID(id) {
			return Path{}, false
		}
		rt, ok := runtimeOfPrefix(prefix + "-")
		if !ok {
			return Path{}, false
		}
		p := Path{Runtime: rt, ID: id}
		if uid, qos, ok := podSlice(slice); ok {
			p.PodUID, p.QoS = uid, qos
		}
		return p, true
	}

	var pod Path
	inPod := false
	if i > 0 {
		pod, inPod = podAt(parts, i-1)
	}
	p, ok := Path{}, false
	if isID(name) {
		if rt, known := bareParents[parentOf(parts, i)]; known {
			p, ok = Path{Runtime: rt, ID: name}, true
		} else if inPod {
			p, ok = Path{ID: name}, true
		}
	} else {
		base := strings.TrimSuffix(name, ".scope")
		for _, sp := range scopePrefixes {
			if id, found := strings.CutPrefix(base, sp.prefix); found && isID(id) {
				p, ok = Path{Runtime: sp.runtime, ID: id}, true
				break
			}
		}
	}
	if !ok {
		return Path{}, false
	}
	if inPod {
		p.PodUID, p.QoS = pod.PodUID, pod.QoS
	}
	return p, true
}

func parentOf(parts []string, i int) string {
	if i == 0 {
		return ""
	}
	return parts[i-1]
}

func runtimeOfPrefix(prefix string) (Runtime, bool) {
	for _, sp := range scopePrefixes {
		if sp.prefix == prefix {
			return sp.runtime, true
		}
	}
	return "", false
}

// podAt says whether parts[i] is a pod's cgroup, checking the parents its
// driver puts it under, so that a lone directory named pod<uuid> is not one.
func podAt(parts []string, i int) (Path, bool) {
	name := parts[i]
	if base, ok := strings.CutSuffix(name, ".slice"); ok {
		uid, qos, ok := podSlice(name)
		if !ok || i == 0 {
			return Path{}, false
		}
		// systemd nests slices by name: a-b-c.slice lives in a-b.slice.
		parent := base[:strings.LastIndexByte(base, '-')] + ".slice"
		if parts[i-1] != parent {
			return Path{}, false
		}
		return Path{PodUID: uid, QoS: qos}, true
	}

	// cgroupfs driver: kubepods/pod<uid> (guaranteed) or
	// kubepods/{burstable,besteffort}/pod<uid>.
	rest, ok := strings.CutPrefix(name, "pod")
	if !ok || i == 0 {
		return Path{}, false
	}
	uid, ok := canonicalUID(rest, '-')
	if !ok {
		return Path{}, false
	}
	switch parent := parts[i-1]; {
	case parent == "kubepods":
		return Path{PodUID: uid, QoS: Guaranteed}, true
	case (parent == string(Burstable) || parent == string(BestEffort)) && i >= 2 && parts[i-2] == "kubepods":
		return Path{PodUID: uid, QoS: QoS(parent)}, true
	}
	return Path{}, false
}

// podSlice reads the systemd driver's pod slice name,
// [<root>-]kubepods[-<qos>]-pod<uid with underscores>.slice; the optional
// root prefix is kind's kubelet.slice, where the name starts "kubelet-".
func podSlice(name string) (uid string, qos QoS, ok bool) {
	base, ok := strings.CutSuffix(name, ".slice")
	if !ok {
		return "", "", false
	}
	segs := strings.Split(base, "-")
	n := len(segs)
	if n < 2 {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(segs[n-1], "pod")
	if !ok {
		return "", "", false
	}
	if uid, ok = canonicalUID(rest, '_'); !ok {
		return "", "", false
	}
	switch {
	case segs[n-2] == "kubepods":
		return uid, Guaranteed, true
	case n >= 3 && segs[n-3] == "kubepods" &&
		(segs[n-2] == string(Burstable) || segs[n-2] == string(BestEffort)):
		return uid, QoS(segs[n-2]), true
	}
	return "", "", false
}

// canonicalUID accepts a pod uid as a lowercase UUID whose four separators
// are sep (the systemd driver escapes '-' as '_') or as the 32 lowercase hex
// digits of a static pod's uid, and returns it with dashes.
func canonicalUID(s string, sep byte) (string, bool) {
	if len(s) == 32 {
		return s, isLowerHex(s)
	}
	if len(s) != 36 {
		return "", false
	}
	b := []byte(s)
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != sep {
				return "", false
			}
			b[i] = '-'
		default:
			if !isLowerHexByte(c) {
				return "", false
			}
		}
	}
	return string(b), true
}

// isID says whether s is a full container id: 64 lowercase hex digits.
func isID(s string) bool {
	return len(s) == 64 && isLowerHex(s)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLowerHexByte(s[i]) {
			return false
		}
	}
	return true
}

func isLowerHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
}
