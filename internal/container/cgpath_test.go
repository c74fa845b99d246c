package container

import (
	"strings"
	"testing"
)

// realPaths are cgroup paths as they appear in the runtimes' and their
// users' issues and docs (the comment on each row says where). Paths copied
// from `systemd-cgls` trees are the tree's nesting joined with '/'; a
// leading /sys/fs/cgroup/... or 0:: line prefix is kept where the source
// had the former and dropped where it had the latter.
var realPaths = []struct {
	path string
	want Path
	ok   bool
}{
	// --- containerd, systemd driver ---
	// netdata/netdata#4868 (systemd-cgls tree on a containerd node)
	{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod55c6c714_b240_4dec_9a45_57b61696ab6e.slice/cri-containerd-2032491dcae31e6746f47daa0ac74564f2843a1bd847c5e6c4eb501ca132ac36.scope",
		Path{Containerd, "2032491dcae31e6746f47daa0ac74564f2843a1bd847c5e6c4eb501ca132ac36", "55c6c714-b240-4dec-9a45-57b61696ab6e", Burstable}, true},
	// netdata/netdata#4868: a static pod, whose uid is the manifest's 32-hex hash
	{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8daa50c3a64c9ff60bb9eab7b44b56fd.slice/cri-containerd-2884d57c0e100d7a9a2f9487ce0bc2986bca3430e988af7a4865aff061f51ac5.scope",
		Path{Containerd, "2884d57c0e100d7a9a2f9487ce0bc2986bca3430e988af7a4865aff061f51ac5", "8daa50c3a64c9ff60bb9eab7b44b56fd", Burstable}, true},
	// cryptnono/cryptnono#47 (k3s under colima, /proc/PID/cgroup)
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7fda01c4_0ece_403d_88b4_c371d66d132a.slice/cri-containerd-e58a24d4a722c99712cff74ef69d93311089584eb32617b3890e0dcb996133f1.scope",
		Path{Containerd, "e58a24d4a722c99712cff74ef69d93311089584eb32617b3890e0dcb996133f1", "7fda01c4-0ece-403d-88b4-c371d66d132a", BestEffort}, true},
	// kubernetes/kubernetes#106514 (v1 systemd hierarchy, absolute)
	{"/sys/fs/cgroup/systemd/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2fc932ce_fdcc_454b_97bd_aadfdeb4c340.slice/cri-containerd-aaefb9d8feed2d453b543f6d928cede7a4dbefa6a0ae7c9b990dd234c56e93b9.scope",
		Path{Containerd, "aaefb9d8feed2d453b543f6d928cede7a4dbefa6a0ae7c9b990dd234c56e93b9", "2fc932ce-fdcc-454b-97bd-aadfdeb4c340", Burstable}, true},
	// kubernetes/kubernetes#106514: containerd's cgroupfs manager given a
	// systemd-style path keeps "slice:prefix:id" as a directory name
	{"/system.slice/containerd.service/kubepods-burstable-pod36b6d6be73b1065af369b3985edafa09.slice:cri-containerd:79fedb3bd23ca77c9d9ccb41909038316f713df22b54b7d942b71d3812e7c74e",
		Path{Containerd, "79fedb3bd23ca77c9d9ccb41909038316f713df22b54b7d942b71d3812e7c74e", "36b6d6be73b1065af369b3985edafa09", Burstable}, true},
	// open-telemetry/opentelemetry-java#4730: the same form, guaranteed pod
	{"/system.slice/containerd.service/kubepods-pod87a18a64_b74a_454a_b10b_a4a36059d0a3.slice:cri-containerd:05c48c82caff3be3d7f1e896981dd410e81487538936914f32b624d168de9db0",
		Path{Containerd, "05c48c82caff3be3d7f1e896981dd410e81487538936914f32b624d168de9db0", "87a18a64-b74a-454a-b10b-a4a36059d0a3", Guaranteed}, true},
	// open-telemetry/opentelemetry-java#4507: the same form at the root (perf_event line)
	{"/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459",
		Path{Containerd, "ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459", "0125ec2f-b64a-4868-8f5b-94b56cbab864", BestEffort}, true},
	// containerd/nri#227 (kind: the kubelet's root is kubelet.slice)
	{"/sys/fs/cgroup/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod1e597579_417e_482f_bf65_5fe170c3aebd.slice/cri-containerd-a09bc17f5aa29b0dbdec9ede5f46cf1396d2405917ab02e6f1eb1019f388396e.scope",
		Path{Containerd, "a09bc17f5aa29b0dbdec9ede5f46cf1396d2405917ab02e6f1eb1019f388396e", "1e597579-417e-482f-bf65-5fe170c3aebd", BestEffort}, true},
	// kata-containers/kata-containers#11598 (systemctl show ControlGroup=): guaranteed pod
	{"/kubepods.slice/kubepods-poddc430cd3_34b7_4ea6_be26_ddfd88d7ddff.slice/cri-containerd-8564224395a4fbf7f2792baa22ee16dfc8f8e862e20342d3b2bcc211a3939af6.scope",
		Path{Containerd, "8564224395a4fbf7f2792baa22ee16dfc8f8e862e20342d3b2bcc211a3939af6", "dc430cd3-34b7-4ea6-be26-ddfd88d7ddff", Guaranteed}, true},
	// kata-containers/kata-containers#11598: the shim and VM in kata_overhead are no container's
	{"/kata_overhead/8564224395a4fbf7f2792baa22ee16dfc8f8e862e20342d3b2bcc211a3939af6", Path{}, false},
	// duckdb/duckdb#16608 (the slice:prefix:id form again, burstable)
	{"/system.slice/containerd.service/kubepods-burstable-podb96a7488_3ee1_4bdc_9c98_155cc887b417.slice:cri-containerd:6ef14b5a76df7b5d24285e3a04ccbc6fd323620272b3787b5dc440fc1b75d294",
		Path{Containerd, "6ef14b5a76df7b5d24285e3a04ccbc6fd323620272b3787b5dc440fc1b75d294", "b96a7488-3ee1-4bdc-9c98-155cc887b417", Burstable}, true},

	// --- CRI-O ---
	// opencontainers/runc#4620 (/proc/PID/cgroup, freezer line)
	{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda5c1f8d5_1919_434d_add7_4afaafdaef89.slice/crio-5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c.scope",
		Path{CRIO, "5eed917563583925ffdbd40a64efb2aaffe58638e57add8becaf460fe74f5b1c", "a5c1f8d5-1919-434d-add7-4afaafdaef89", Burstable}, true},
	// openshift/microshift#697 (systemd-cgls)
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podc8bad552_5c99_4d4f_b71c_c426c0cde014.slice/crio-15b6e0c6490cad17fcf69eb837794349b4df96f84ba96c6be9828fe281c055a9.scope",
		Path{CRIO, "15b6e0c6490cad17fcf69eb837794349b4df96f84ba96c6be9828fe281c055a9", "c8bad552-5c99-4d4f-b71c-c426c0cde014", BestEffort}, true},
	// kubernetes/minikube#11280: minikube's node is a Docker container (cgroupfs driver)
	{"/docker/d6701ec289c56e4391acb11d07474b3139466857a305490575508a8b7a9fcf22/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2ca4a155_3599_498d_bb9d_4446693fa3ea.slice/crio-358607a37e7ada357032e7f5729c9ae6a3efdb7962acbcbe47ff6a3c5506cb1c.scope",
		Path{CRIO, "358607a37e7ada357032e7f5729c9ae6a3efdb7962acbcbe47ff6a3c5506cb1c", "2ca4a155-3599-498d-bb9d-4446693fa3ea", BestEffort}, true},
	// sustainable-computing-io/kepler#153: conmon under the pod (conmon_cgroup = "pod") is the pod's, not a container's
	{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podb4e8e0dc_caf3_4a43_bf50_f84ef5ef7a8f.slice/crio-conmon-927cffdca4f374600fe49a62bfd7f2e73ea6d37cdafb1bf8f89afb64d7e6c6a5.scope",
		Path{PodUID: "b4e8e0dc-caf3-4a43-bf50-f84ef5ef7a8f", QoS: Burstable}, true},
	// openshift/microshift#697: conmon in system.slice (CRI-O's default conmon_cgroup) is a host process
	{"/system.slice/crio-conmon-e0c85fe7644a858988d9687c2e0736a7d31922740d0f3e001c6b2e0aa7e5f528.scope", Path{}, false},
	// istio/istio#55139 (/proc/PID/cgroup of conmon on kubeadm + CRI-O)
	{"/system.slice/crio-conmon-c055fa05e5c1c20cc4ef3e2ebd180ab360b5369538c9b7cd536b3e6c58311b39.scope", Path{}, false},

	// --- Kubernetes, cgroupfs driver (bare id: the path does not name the runtime) ---
	// cri-o/cri-o#811 (CRI-O before its cgroupfs names got the crio- prefix)
	{"/sys/fs/cgroup/cpu/kubepods/burstable/pod58662905-8ccc-11e7-a695-c85b76cda386/1659f887a192f3515dd9b91a41d274abf29ca49de3d2330869131b2d93b45b94",
		Path{"", "1659f887a192f3515dd9b91a41d274abf29ca49de3d2330869131b2d93b45b94", "58662905-8ccc-11e7-a695-c85b76cda386", Burstable}, true},
	// moby/moby#34584 (mountinfo root of a container's cpu cgroup)
	{"/kubepods/besteffort/pod9a18ffb8-8513-11e7-b26e-7e29fbe2a5a3/d28e0087cf8f3f0429f755d60b0de415b20fcf76736ded7bab6e30e7b739ee36",
		Path{"", "d28e0087cf8f3f0429f755d60b0de415b20fcf76736ded7bab6e30e7b739ee36", "9a18ffb8-8513-11e7-b26e-7e29fbe2a5a3", BestEffort}, true},
	// elastic/apm-agent-java#2352 (minikube with containerd, mountinfo)
	{"/kubepods/besteffort/pod72f9a42e-50d3-47ee-8ec7-0bccfb6ea7ae/52371e0edd6309da3d4eaee6d303aa3401abbef92c34c2b1ddba7b28d82d6cb0",
		Path{"", "52371e0edd6309da3d4eaee6d303aa3401abbef92c34c2b1ddba7b28d82d6cb0", "72f9a42e-50d3-47ee-8ec7-0bccfb6ea7ae", BestEffort}, true},
	// adoptium/adoptium-support#638 (/proc/self/cgroup in a pod)
	{"/kubepods/burstable/podd7874f44-eee0-423c-83c9-f246075bdde1/fbaa59723cd1f05d310e6f48b5d49a9d9e9552b7fde2205d0a2e2b5f60ec21ba",
		Path{"", "fbaa59723cd1f05d310e6f48b5d49a9d9e9552b7fde2205d0a2e2b5f60ec21ba", "d7874f44-eee0-423c-83c9-f246075bdde1", Burstable}, true},
	// spiffe/spire#2578 (kind on a cgroup v2 host, inside the node: the kubelet's root is /kubelet)
	{"/kubelet/kubepods/besteffort/poddfd874dc-ab52-4793-af47-d06b78b68337/a3804295d867b752119eab99a9e6364fdf7fe6a4be5af0b11f9915fa7b64ff95",
		Path{"", "a3804295d867b752119eab99a9e6364fdf7fe6a4be5af0b11f9915fa7b64ff95", "dfd874dc-ab52-4793-af47-d06b78b68337", BestEffort}, true},
	{"/system.slice/kubelet.service", Path{}, false},
	// siderolabs/talos#3950 (cAdvisor ids): the pause container, and the pod cgroup itself
	{"/kubepods/besteffort/pod18d34ce4-50c7-452c-9df8-53c4a3fdf363/a684bbdd0c4b6937b5ece9713bed661305ab0de570eb12b7c28a032aaf602937",
		Path{"", "a684bbdd0c4b6937b5ece9713bed661305ab0de570eb12b7c28a032aaf602937", "18d34ce4-50c7-452c-9df8-53c4a3fdf363", BestEffort}, true},
	{"/kubepods/besteffort/pod18d34ce4-50c7-452c-9df8-53c4a3fdf363",
		Path{PodUID: "18d34ce4-50c7-452c-9df8-53c4a3fdf363", QoS: BestEffort}, true},
	// google/cadvisor#2540 (list of pod cgroups)
	{"/kubepods/burstable/pod1ff47ee6-9685-4726-ac6f-0ff070c452d6",
		Path{PodUID: "1ff47ee6-9685-4726-ac6f-0ff070c452d6", QoS: Burstable}, true},
	// kubernetes/minikube pkg/minikube/bootstrapper/bsutil/kverify/api_server.go (comment):
	// minikube's node as a GitHub Actions job container, a static pod inside
	{"/sys/fs/cgroup/freezer/actions_job/e62ef4349cc5a70f4b49f8a150ace391da6ad6df27073c83ecc03dbf81fde1ce/kubepods/burstable/poda1de58db0ce81d19df7999f6808def1b/5df53230fe3483fd65f341923f18a477fda92ae9cd71061168130ef164fe479c",
		Path{"", "5df53230fe3483fd65f341923f18a477fda92ae9cd71061168130ef164fe479c", "a1de58db0ce81d19df7999f6808def1b", Burstable}, true},

	// --- Docker ---
	// kubernetes/kubernetes#62896: dockershim, guaranteed pod directly under kubepods.slice
	{"/kubepods.slice/kubepods-pod10231429_28f6_11e8_8903_74dbd1a06fe0.slice/docker-32cc26191dad2120ae02fbe32e3cb962c291591439f28765da6c2b8dd28d7e48.scope",
		Path{Docker, "32cc26191dad2120ae02fbe32e3cb962c291591439f28765da6c2b8dd28d7e48", "10231429-28f6-11e8-8903-74dbd1a06fe0", Guaranteed}, true},
	// kontena/pharos-cluster#440 (systemd-cgls, dockershim)
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9692aa0e_748e_11e8_8dfa_76d458035df6.slice/docker-abddff03dfd7710c79a750ce3e730365cbb2c8247a974170c1062683bc3e9152.scope",
		Path{Docker, "abddff03dfd7710c79a750ce3e730365cbb2c8247a974170c1062683bc3e9152", "9692aa0e-748e-11e8-8dfa-76d458035df6", BestEffort}, true},
	// lxc/lxc#3890 (/proc/self/cgroup in a dockershim pod)
	{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d4424e6_bb13_42f4_a47a_45a4828bf54d.slice/docker-d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98.scope",
		Path{Docker, "d0b3604b67ac7930dd34ba3a796627e3e4717d12309e90a4afe3f38b6816ac98", "7d4424e6-bb13-42f4-a47a-45a4828bf54d", Burstable}, true},
	// open-telemetry/opentelemetry-java#4733 (cri-dockerd)
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod82f40de6_1226_4577_ab35_2f378b9f5e49.slice/docker-ca0587256640e2964fb4656da0d99828966f90ba96a29a650860e0ca63e8eced.scope",
		Path{Docker, "ca0587256640e2964fb4656da0d99828966f90ba96a29a650860e0ca63e8eced", "82f40de6-1226-4577-ab35-2f378b9f5e49", BestEffort}, true},
	// moby/moby#33352 (cgroupfs driver)
	{"/docker/5dace3de0735f73d2b5048f12d41a71741a02e49668de921fdae62f7e65dc498",
		Path{Runtime: Docker, ID: "5dace3de0735f73d2b5048f12d41a71741a02e49668de921fdae62f7e65dc498"}, true},
	// ctrsploit/ctrsploit#280 (cgroupfs driver; the same file's 0:: line is the daemon's)
	{"/docker/2403ccfe427f1dc7b6120dccb9ac58c2f8456950380d587a9f33ea7f00dd303d",
		Path{Runtime: Docker, ID: "2403ccfe427f1dc7b6120dccb9ac58c2f8456950380d587a9f33ea7f00dd303d"}, true},
	{"/system.slice/containerd.service", Path{}, false},
	// neuvector/neuvector share/system/cgroup_test.go (CentOS, systemd driver)
	{"/system.slice/docker-9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d.scope",
		Path{Runtime: Docker, ID: "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d"}, true},
	// moby/moby#4450 (systemd-cgls of the first systemd driver)
	{"/system.slice/system-docker.slice/docker-d6b15f04feb95083acea4b9caa6e59f8ebe67e3e3cf9cb8c59fad543490ee3ef.scope",
		Path{Runtime: Docker, ID: "d6b15f04feb95083acea4b9caa6e59f8ebe67e3e3cf9cb8c59fad543490ee3ef"}, true},
	// rootless Docker: layout from docker/docs#14545, id from NixOS/nixpkgs#258141 (systemctl --user)
	{"/user.slice/user-1000.slice/user@1000.service/user.slice/docker-01b27f38970b685be254e2440e8830bf9076972353b69409e268b55cc22b5b4c.scope",
		Path{Runtime: Docker, ID: "01b27f38970b685be254e2440e8830bf9076972353b69409e268b55cc22b5b4c"}, true},
	// cryptnono/cryptnono#47: a BuildKit step is no container
	{"/docker/buildkit/t4967jvf8rbufklrhkicskyes", Path{}, false},

	// --- Podman ---
	// podman-container-tools/podman#507 (systemd-cgls, rootful)
	{"/machine.slice/libpod-0411a2a82311fbc65b137ca550d5f7e6b6863bc734759be2f515b0b67062d49a.scope",
		Path{Runtime: Podman, ID: "0411a2a82311fbc65b137ca550d5f7e6b6863bc734759be2f515b0b67062d49a"}, true},
	// podman-container-tools/podman#507: its conmon is a host process
	{"/machine.slice/libpod-conmon-0411a2a82311fbc65b137ca550d5f7e6b6863bc734759be2f515b0b67062d49a.scope", Path{}, false},
	// podman-container-tools/podman#8588: rootless, the container's own sub-cgroup
	{"/sys/fs/cgroup/user.slice/user-1001.slice/user@1001.service/user.slice/libpod-2504b790675718f38df14eb544badb0ec8df966dc81298329067fa5e0eb6d27b.scope/container",
		Path{Runtime: Podman, ID: "2504b790675718f38df14eb544badb0ec8df966dc81298329067fa5e0eb6d27b"}, true},
	// podman-container-tools/podman#4634: rootless, in a Podman pod (a Podman pod id is no Kubernetes
	// uid); the issue truncates the right path, so it is put together from the wrong one's parts
	{"/user.slice/user-1001.slice/user@1001.service/user.slice/user-libpod_pod_d7fed6e241437f78ef3153436b7863a8000678f6037fe6027f5b0b0b0f4921f3.slice/libpod-068c28684eb595a706147fc9e8952db76e2f79d522937122307706105463e9b2.scope",
		Path{Runtime: Podman, ID: "068c28684eb595a706147fc9e8952db76e2f79d522937122307706105463e9b2"}, true},
	// podman-container-tools/podman#3566 (cgroupfs manager: no .scope)
	{"/libpod_parent/libpod-a0cbe7ff2302118dff43f5715b7c22beb40393b53e40c81446f7997976184115",
		Path{Runtime: Podman, ID: "a0cbe7ff2302118dff43f5715b7c22beb40393b53e40c81446f7997976184115"}, true},
	// containers/crun#376: `podman unshare` runs in a podman-PID.scope, no container
	{"/user.slice/user-1000.slice/user@1000.service/user.slice/podman-6696.scope", Path{}, false},

	// --- host cgroups ---
	// kubernetes-sigs/kubespray#11027: the runtime's own service
	{"/kube.slice/crio.service", Path{}, false},
	{"/system.slice/crio.service", Path{}, false},
	// containerd/containerd#3133: IBM Cloud's podruntime/runtime for containerd
	{"/podruntime/runtime", Path{}, false},
	// podman-container-tools/podman#14851: a login session
	{"/user.slice/user-1000.slice/session-1.scope", Path{}, false},
}

func TestParsePathReal(t *testing.T) {
	if len(realPaths) < 25 {
		t.Fatalf("%d real paths; the issue asks for at least 25", len(realPaths))
	}
	for _, tc := range realPaths {
		got, ok := ParsePath(tc.path)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParsePath(%q)\n = %+v, %v\nwant %+v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

const (
	id1  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	id2  = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	uid  = "8f3a1c2e-5b7d-4e9f-a1b2-c3d4e5f60718"
	uidU = "8f3a1c2e_5b7d_4e9f_a1b2_c3d4e5f60718"
)

// TestParsePathRules covers what the real paths leave out: host cgroups,
// every QoS under each driver, nesting, and names that merely look like a
// runtime's.
func TestParsePathRules(t *testing.T) {
	tests := []struct {
		name string
		path string
		want Path
		ok   bool
	}{
		{"root", "/", Path{}, false},
		{"empty", "", Path{}, false},
		{"init", "/init.scope", Path{}, false},
		{"service", "/system.slice/ssh.service", Path{}, false},
		{"docker daemon", "/system.slice/docker.service", Path{}, false},
		{"kubepods root", "/kubepods.slice", Path{}, false},
		{"qos slice", "/kubepods.slice/kubepods-burstable.slice", Path{}, false},
		{"qos dir", "/kubepods/besteffort", Path{}, false},

		{"systemd guaranteed pod", "/kubepods.slice/kubepods-pod" + uidU + ".slice", Path{PodUID: uid, QoS: Guaranteed}, true},
		{"systemd burstable pod", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice", Path{PodUID: uid, QoS: Burstable}, true},
		{"systemd besteffort containerd", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope", Path{Containerd, id1, uid, BestEffort}, true},
		{"cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + id1, Path{"", id1, uid, Guaranteed}, true},
		{"cgroupfs guaranteed pod", "/kubepods/pod" + uid, Path{PodUID: uid, QoS: Guaranteed}, true},
		{"cgroupfs crio", "/kubepods/burstable/pod" + uid + "/crio-" + id1, Path{CRIO, id1, uid, Burstable}, true},
		{"cgroupfs crio conmon", "/kubepods/burstable/pod" + uid + "/crio-conmon-" + id1, Path{PodUID: uid, QoS: Burstable}, true},
		{"kind node on systemd host", "/system.slice/docker-" + id2 + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod" + uidU + ".slice/cri-containerd-" + id1 + ".scope",
			Path{Containerd, id1, uid, Guaranteed}, true},
		{"kind node's own kubelet", "/system.slice/docker-" + id2 + ".scope/kubelet.slice", Path{Runtime: Docker, ID: id2}, true},
		{"k3d node with cgroupfs kubelet", "/docker/" + id2 + "/kubepods/besteffort/pod" + uid + "/" + id1, Path{"", id1, uid, BestEffort}, true},
		{"pod cgroup inside a node", "/docker/" + id2 + "/kubepods/burstable/pod" + uid, Path{PodUID: uid, QoS: Burstable}, true},
		{"docker in docker", "/docker/" + id2 + "/docker/" + id1, Path{Runtime: Docker, ID: id1}, true},
		{"dind in a pod's container gets no pod", "/kubepods/pod" + uid + "/" + id2 + "/docker/" + id1, Path{Runtime: Docker, ID: id1}, true},
		{"actions job container", "/actions_job/" + id1, Path{Runtime: Docker, ID: id1}, true},
		{"systemd in a container", "/system.slice/docker-" + id1 + ".scope/init.scope", Path{Runtime: Docker, ID: id1}, true},
		{"trailing slash", "/system.slice/docker-" + id1 + ".scope/", Path{Runtime: Docker, ID: id1}, true},
		{"no leading slash", "machine.slice/libpod-" + id1 + ".scope", Path{Runtime: Podman, ID: id1}, true},

		// A process naming its own cgroup: only the exact shape counts.
		{"short id", "/system.slice/docker-" + id1[:12] + ".scope", Path{}, false},
		{"long id", "/system.slice/docker-" + id1 + "0.scope", Path{}, false},
		{"upper-case id", "/system.slice/docker-" + strings.ToUpper(id1) + ".scope", Path{}, false},
		{"non-hex id", "/system.slice/docker-" + id1[:63] + "g.scope", Path{}, false},
		{"prefix inside a name", "/user.slice/user-1000.slice/session-3.scope/my-docker-" + id1 + ".scope", Path{}, false},
		{"suffix after scope", "/system.slice/docker-" + id1 + ".scope.bak", Path{}, false},
		{"mount unit", "/system.slice/docker-" + id1 + ".scope.mount", Path{}, false},
		{"unknown runtime", "/system.slice/nerdctl-" + id1 + ".scope", Path{}, false},
		{"bare id anywhere", "/system.slice/" + id1, Path{}, false},
		{"bare id under a dir named like a pod", "/tmp/pod" + uid + "/" + id1, Path{}, false},
		{"pod dir outside kubepods", "/user.slice/burstable/pod" + uid, Path{}, false},
		{"pod slice under the wrong parent", "/user.slice/kubepods-burstable-pod" + uidU + ".slice", Path{}, false},
		{"pod slice with dashes", "/kubepods.slice/kubepods-pod" + uid + ".slice", Path{}, false},
		{"cgroupfs pod with underscores", "/kubepods/pod" + uidU, Path{}, false},
		{"upper-case uid", "/kubepods/pod" + strings.ToUpper(uid), Path{}, false},
		{"uid separators misplaced", "/kubepods/pod8f3a1c2e5-b7d-4e9f-a1b2-c3d4e5f60718", Path{}, false},
		{"unknown qos", "/kubepods/gold/pod" + uid, Path{}, false},
		{"colon form, bad id", "/kubepods-pod" + uidU + ".slice:cri-containerd:" + id1[:63], Path{}, false},
		{"colon form, unknown prefix", "/kubepods-pod" + uidU + ".slice:runsc:" + id1, Path{}, false},
		{"colon form, bad slice keeps the container", "/foo.slice:cri-containerd:" + id1, Path{Runtime: Containerd, ID: id1}, true},
		{"container under a forged pod keeps no pod", "/user.slice/kubepods-pod" + uidU + ".slice/docker-" + id1 + ".scope", Path{Runtime: Docker, ID: id1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParsePath(tc.path)
			if ok != tc.ok || got != tc.want {
				t.Errorf("ParsePath(%q)\n = %+v, %v\nwant %+v, %v", tc.path, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParsePath holds ParsePath to its promise whatever the path: it never
// panics, and what it returns has the shape it documents and was in the
// path.
func FuzzParsePath(f *testing.F) {
	for _, tc := range realPaths {
		f.Add(tc.path)
	}
	f.Add("/kubepods/pod" + uid + "/crio-conmon-" + id1)
	f.Add("/x.slice:crio:" + id1)
	f.Fuzz(func(t *testing.T, path string) {
		p, ok := ParsePath(path)
		if !ok {
			if p != (Path{}) {
				t.Fatalf("ParsePath(%q) = %+v, false: want the zero Path", path, p)
			}
			return
		}
		if p.ID == "" && p.PodUID == "" {
			t.Fatalf("ParsePath(%q) = %+v: ok without an id or a pod", path, p)
		}
		if p.ID != "" && (!isID(p.ID) || !strings.Contains(path, p.ID)) {
			t.Fatalf("ParsePath(%q): ID %q is not 64 hex digits from the path", path, p.ID)
		}
		if p.ID == "" && p.Runtime != "" {
			t.Fatalf("ParsePath(%q) = %+v: a runtime without a container", path, p)
		}
		if p.PodUID != "" {
			u, ok := canonicalUID(p.PodUID, '-')
			if !ok || u != p.PodUID {
				t.Fatalf("ParsePath(%q): PodUID %q is not canonical", path, p.PodUID)
			}
			if !strings.Contains(path, p.PodUID) && !strings.Contains(path, strings.ReplaceAll(p.PodUID, "-", "_")) {
				t.Fatalf("ParsePath(%q): PodUID %q is not from the path", path, p.PodUID)
			}
		}
		if (p.PodUID == "") != (p.QoS == "") {
			t.Fatalf("ParsePath(%q) = %+v: QoS and PodUID go together", path, p)
		}
	})
}
