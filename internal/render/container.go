package render

// container.go: the container and pod a socket belongs to, the same in
// every command: a "container" object in JSON (absent for the host's
// sockets), CONTAINER and POD columns in tables.

import "github.com/socklife/socklife/internal/container"

// ContainerJSON is the "container" object. Name and the pod's names are
// null until the runtime answers; pod is null outside Kubernetes; runtime
// is null where the cgroup path does not say (the cgroupfs driver's bare
// /kubepods/<qos>/pod<uid>/<id>, which containerd and Docker share).
type ContainerJSON struct {
	ID      string   `json:"id"`
	Runtime *string  `json:"runtime"`
	Name    *string  `json:"name"`
	Pod     *PodJSON `json:"pod"`
	Cgroup  string   `json:"cgroup"`
}

// PodJSON is a container's pod.
type PodJSON struct {
	Namespace *string `json:"namespace"`
	Name      *string `json:"name"`
	UID       string  `json:"uid"`
}

// ContainerToJSON is c as JSON; nil for !ok, so that the key is omitted.
func ContainerToJSON(c container.Container, ok bool) *ContainerJSON {
	if !ok {
		return nil
	}
	j := &ContainerJSON{ID: c.ID, Runtime: orNull(string(c.Runtime)), Name: orNull(c.Name), Cgroup: c.Cgroup}
	if c.Pod.UID != "" {
		j.Pod = &PodJSON{Namespace: orNull(c.Pod.Namespace), Name: orNull(c.Pod.Name), UID: c.Pod.UID}
	}
	return j
}

func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// appendContainerJSON appends `,"container":{...}` for the hand-built
// JSON of trace and record, exactly as encoding/json writes ContainerJSON
// (a test holds them equal); nothing when !ok.
func appendContainerJSON(b []byte, c container.Container, ok bool) []byte {
	if !ok {
		return b
	}
	b = append(b, `,"container":{"id":`...)
	b = appendJSONString(b, c.ID)
	b = append(b, `,"runtime":`...)
	b = appendJSONStringOrNull(b, string(c.Runtime))
	b = append(b, `,"name":`...)
	b = appendJSONStringOrNull(b, c.Name)
	b = append(b, `,"pod":`...)
	if c.Pod.UID == "" {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"namespace":`...)
		b = appendJSONStringOrNull(b, c.Pod.Namespace)
		b = append(b, `,"name":`...)
		b = appendJSONStringOrNull(b, c.Pod.Name)
		b = append(b, `,"uid":`...)
		b = appendJSONString(b, c.Pod.UID)
		b = append(b, '}')
	}
	b = append(b, `,"cgroup":`...)
	b = appendJSONString(b, c.Cgroup)
	return append(b, '}')
}

func appendJSONStringOrNull(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, s)
}

// shortIDLen is how much of a container id tables show, as docker ps and
// crictl ps do.
const shortIDLen = 12

// appendContainerCell appends the CONTAINER cell: the container's name,
// else its short id; "-" for the host.
func appendContainerCell(b []byte, c container.Container, ok bool) []byte {
	switch {
	case !ok:
		return append(b, '-')
	case c.Name != "":
		return appendTerm(b, c.Name)
	case len(c.ID) > shortIDLen:
		return append(b, c.ID[:shortIDLen]...) // hex: nothing to escape
	case c.ID != "":
		return append(b, c.ID...)
	}
	return append(b, '-') // a pod's own cgroup: no container of its own
}

// appendPodCell appends the POD cell: namespace/name, else the pod's uid;
// "-" outside Kubernetes.
func appendPodCell(b []byte, c container.Container, ok bool) []byte {
	switch {
	case !ok || c.Pod.UID == "":
		return append(b, '-')
	case c.Pod.Name != "":
		b = appendTerm(b, c.Pod.Namespace)
		b = append(b, '/')
		return appendTerm(b, c.Pod.Name)
	}
	return appendTerm(b, c.Pod.UID)
}

// anyContainer says whether any of n rows belongs to a container: tables
// have CONTAINER and POD columns only then.
func anyContainer(n int, has func(i int) bool) bool {
	for i := range n {
		if has(i) {
			return true
		}
	}
	return false
}

// appendContainerCells appends a row's CONTAINER and POD cells to buf,
// ending each in ends.
func appendContainerCells(buf []byte, ends *[]int, c container.Container, ok bool) []byte {
	buf = appendContainerCell(buf, c, ok)
	*ends = append(*ends, len(buf))
	buf = appendPodCell(buf, c, ok)
	*ends = append(*ends, len(buf))
	return buf
}
