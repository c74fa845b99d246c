package runtimes

import "testing"

func TestFromLabels(t *testing.T) {
	k8s := map[string]string{
		labelPodName: "web-0", labelPodNamespace: "shop", labelPodUID: "6f1c", labelContainerName: "web",
	}
	for _, tc := range []struct {
		what   string
		name   string
		labels map[string]string
		want   Names
	}{
		{"plain Docker container", "/billing", nil, Names{Container: "billing"}},
		{"CRI container", "web", k8s, Names{Container: "web", PodName: "web-0", PodNamespace: "shop", PodUID: "6f1c"}},
		{"cri-dockerd container: the kubelet's name, not Docker's", "/k8s_web_web-0_shop_6f1c_0", k8s,
			Names{Container: "web", PodName: "web-0", PodNamespace: "shop", PodUID: "6f1c"}},
		{"cri-dockerd sandbox: named as its pod", "/k8s_POD_web-0_shop_6f1c_0", map[string]string{
			labelPodName: "web-0", labelPodNamespace: "shop", labelPodUID: "6f1c", labelContainerName: "POD",
			labelDockerType: dockerSandboxType,
		}, Names{PodName: "web-0", PodNamespace: "shop", PodUID: "6f1c"}},
	} {
		if got := fromLabels(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.what, got, tc.want)
		}
	}
}

func TestSocketPath(t *testing.T) {
	for _, tc := range []struct {
		endpoint, want string
		bad            bool
	}{
		{"unix:///run/containerd/containerd.sock", "/run/containerd/containerd.sock", false},
		{"/var/run/docker.sock", "/var/run/docker.sock", false},
		{"tcp://127.0.0.1:2375", "", true},
		{"npipe:////./pipe/docker_engine", "", true},
		{"run/crio/crio.sock", "", true},
		{"unix://run/crio/crio.sock", "", true},
	} {
		got, err := socketPath(tc.endpoint)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("socketPath(%q) = %q, %v", tc.endpoint, got, err)
		}
	}
}
