package deploy

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The privileges the DaemonSet holds, exactly: the README's Fleet section
// says why each is needed (TestCapabilitiesAreDocumented).
var capabilities = []corev1.Capability{"BPF", "PERFMON", "SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"}

// The host paths the agent reads, and where: all read-only.
var hostMounts = map[string]string{
	"/sys/fs/cgroup":                  "/sys/fs/cgroup",
	"/run/netns":                      "/run/netns",
	"/sys/kernel/btf":                 "/sys/kernel/btf",
	"/sys/kernel/tracing":             "/sys/kernel/tracing",
	"/run/containerd/containerd.sock": "/run/containerd/containerd.sock",
}

func TestDaemonSetLeastPrivilege(t *testing.T) {
	for _, p := range privilegeProblems(daemonSet(t)) {
		t.Error(p)
	}
}

// privilegeProblems lists where a DaemonSet holds more than socklife needs,
// or less than it needs to work.
func privilegeProblems(ds *appsv1.DaemonSet) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	pod := ds.Spec.Template.Spec
	if !pod.HostPID {
		bad("hostPID must be true: BPF reports host pids, and pods' namespaces are found through /proc/PID/ns/net")
	}
	if pod.HostNetwork {
		bad("hostNetwork must be false: socklife enters namespaces with setns and needs no host network")
	}
	if pod.HostIPC {
		bad("hostIPC: nothing needs it")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		bad("the pod must not mount a service account token")
	}
	if sp := pod.SecurityContext; sp == nil || sp.SeccompProfile == nil || sp.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad("the pod's seccomp profile must be RuntimeDefault")
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		return append(out, fmt.Sprintf("want one container, have %d (and %d init)", len(pod.Containers), len(pod.InitContainers)))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil {
		return append(out, "the container has no securityContext")
	}
	if sc.Privileged != nil && *sc.Privileged {
		bad("privileged: true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		bad("allowPrivilegeEscalation must be false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		bad("readOnlyRootFilesystem must be true")
	}
	if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
		bad("procMount %q: the default masks are kept", *sc.ProcMount)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		bad("capabilities must drop ALL")
	} else if !slices.Equal(sc.Capabilities.Add, capabilities) {
		bad("capabilities added %v, documented %v", sc.Capabilities.Add, capabilities)
	}
	// Added capabilities are effective for uid 0 only.
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		bad("runAsUser must be 0")
	}

	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	seen := map[string]bool{}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly {
			bad("mount %s is writable", m.MountPath)
		}
		v, ok := volumes[m.Name]
		if !ok || v.HostPath == nil {
			bad("mount %s is no hostPath volume", m.MountPath)
			continue
		}
		if want, ok := hostMounts[v.HostPath.Path]; !ok || want != m.MountPath {
			bad("host %s mounted at %s: not one of %v", v.HostPath.Path, m.MountPath, hostMounts)
		}
		seen[v.HostPath.Path] = true
		// Named namespaces made after the agent started must show up.
		if m.MountPath == "/run/netns" && (m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationHostToContainer) {
			bad("/run/netns needs mountPropagation HostToContainer")
		}
		if m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional {
			bad("%s: Bidirectional propagation needs a privileged container", m.MountPath)
		}
	}
	for path := range hostMounts {
		if !seen[path] {
			bad("host %s is not mounted", path)
		}
	}
	if len(pod.Volumes) != len(c.VolumeMounts) {
		bad("%d volumes, %d mounted", len(pod.Volumes), len(c.VolumeMounts))
	}
	return out
}

// Each privilege check catches the DaemonSet that breaks it.
func TestPrivilegeProblemsCatchEachExcess(t *testing.T) {
	yes, no := true, false
	user := int64(1000)
	bidirectional := corev1.MountPropagationBidirectional
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.PodSpec, *corev1.Container)
	}{
		{"no hostPID", func(p *corev1.PodSpec, _ *corev1.Container) { p.HostPID = false }},
		{"hostNetwork", func(p *corev1.PodSpec, _ *corev1.Container) { p.HostNetwork = true }},
		{"hostIPC", func(p *corev1.PodSpec, _ *corev1.Container) { p.HostIPC = true }},
		{"token", func(p *corev1.PodSpec, _ *corev1.Container) { p.AutomountServiceAccountToken = &yes }},
		{"no seccomp", func(p *corev1.PodSpec, _ *corev1.Container) { p.SecurityContext = nil }},
		{"privileged", func(_ *corev1.PodSpec, c *corev1.Container) { c.SecurityContext.Privileged = &yes }},
		{"escalation", func(_ *corev1.PodSpec, c *corev1.Container) { c.SecurityContext.AllowPrivilegeEscalation = nil }},
		{"writable root", func(_ *corev1.PodSpec, c *corev1.Container) { c.SecurityContext.ReadOnlyRootFilesystem = &no }},
		{"extra capability", func(_ *corev1.PodSpec, c *corev1.Container) {
			c.SecurityContext.Capabilities.Add = append(c.SecurityContext.Capabilities.Add, "NET_ADMIN")
		}},
		{"missing capability", func(_ *corev1.PodSpec, c *corev1.Container) {
			c.SecurityContext.Capabilities.Add = c.SecurityContext.Capabilities.Add[1:]
		}},
		{"nothing dropped", func(_ *corev1.PodSpec, c *corev1.Container) { c.SecurityContext.Capabilities.Drop = nil }},
		{"not root", func(_ *corev1.PodSpec, c *corev1.Container) { c.SecurityContext.RunAsUser = &user }},
		{"writable mount", func(_ *corev1.PodSpec, c *corev1.Container) { c.VolumeMounts[0].ReadOnly = false }},
		{"bidirectional", func(_ *corev1.PodSpec, c *corev1.Container) { c.VolumeMounts[0].MountPropagation = &bidirectional }},
		{"netns not propagated", func(_ *corev1.PodSpec, c *corev1.Container) {
			for i := range c.VolumeMounts {
				if c.VolumeMounts[i].MountPath == "/run/netns" {
					c.VolumeMounts[i].MountPropagation = nil
				}
			}
		}},
		{"a mount too many", func(p *corev1.PodSpec, c *corev1.Container) {
			p.Volumes = append(p.Volumes, corev1.Volume{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "root", MountPath: "/host", ReadOnly: true})
		}},
		{"a mount missing", func(p *corev1.PodSpec, c *corev1.Container) {
			c.VolumeMounts = c.VolumeMounts[1:]
			p.Volumes = p.Volumes[1:]
		}},
		{"an emptyDir", func(p *corev1.PodSpec, c *corev1.Container) {
			p.Volumes[0].HostPath, p.Volumes[0].EmptyDir = nil, &corev1.EmptyDirVolumeSource{}
		}},
	} {
		ds := daemonSet(t)
		pod := &ds.Spec.Template.Spec
		tc.mutate(pod, &pod.Containers[0])
		if problems := privilegeProblems(ds); len(problems) == 0 {
			t.Errorf("%s: no problem found", tc.name)
		}
	}
}

// The README says why each capability is needed: it names exactly the ones
// the DaemonSet adds.
func TestCapabilitiesAreDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, fleet, ok := strings.Cut(string(readme), "\n## Fleet\n")
	if !ok {
		t.Fatal("README.md has no \"## Fleet\" section")
	}
	fleet, _, _ = strings.Cut(fleet, "\n## ")
	_, table, ok := strings.Cut(fleet, "| capability |")
	if !ok {
		t.Fatal("the Fleet section has no capability table")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	var documented []corev1.Capability
	for _, m := range regexp.MustCompile("(?m)^\\| `CAP_([A-Z_]+)`").FindAllStringSubmatch(table, -1) {
		documented = append(documented, corev1.Capability(m[1]))
	}
	if !slices.Equal(documented, capabilities) {
		t.Errorf("README's capability table lists %v, the DaemonSet adds %v", documented, capabilities)
	}
}
