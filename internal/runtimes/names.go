package runtimes

import "strings"

// Names is what a container runtime knows a container by. Pod fields are
// empty for a container that no kubelet made; Container is empty for a
// pod sandbox (its cgroup holds the pause process, so the pod names it).
type Names struct {
	Container    string
	PodName      string
	PodNamespace string
	PodUID       string
}

// The labels the kubelet puts on every container and sandbox it asks a
// runtime for, through CRI (containerd, CRI-O) or cri-dockerd (Docker).
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	// cri-dockerd marks a pause container this way and names its
	// container "POD"; the pod is its name.
	labelDockerType   = "io.kubernetes.docker.type"
	dockerSandboxType = "podsandbox"
)

// fromLabels names a container by its runtime name and labels: the
// kubelet's container name wins over the runtime's (cri-dockerd's Docker
// name is k8s_<container>_<pod>_<namespace>_<uid>_<attempt>).
func fromLabels(runtimeName string, labels map[string]string) Names {
	n := Names{
		Container:    strings.TrimPrefix(runtimeName, "/"),
		PodName:      labels[labelPodName],
		PodNamespace: labels[labelPodNamespace],
		PodUID:       labels[labelPodUID],
	}
	if c := labels[labelContainerName]; c != "" {
		n.Container = c
	}
	if labels[labelDockerType] == dockerSandboxType {
		n.Container = ""
	}
	return n
}
