package deploy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// decodeStrict decodes the one YAML object of file into v, and fails the
// test on anything v has no field for.
func decodeStrict(t *testing.T, file string, v any) {
	t.Helper()
	y, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := strictDecode(y, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// strictDecode is the API server's strict field validation, offline:
// unknown and duplicate fields are errors. sigs.k8s.io/json, not
// encoding/json with DisallowUnknownFields: encoding/json matches field
// names case-insensitively, so "readonly: true" would pass here as
// readOnly and be dropped by the API server.
func strictDecode(y []byte, v any) error {
	if bytes.Contains(y, []byte("\n---")) {
		return errors.New("one object per file, please")
	}
	j, err := yaml.YAMLToJSONStrict(y)
	if err != nil {
		return err
	}
	strict, err := sigsjson.UnmarshalStrict(j, v, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func TestStrictDecodeRefusesWhatTheAPIServerWouldDrop(t *testing.T) {
	const head = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: x\n"
	for _, bad := range []string{
		head + "automountServiceaccountToken: false\n", // case
		head + "imagePullSecret: []\n",                 // unknown
		head + "secrets: []\nsecrets: []\n",            // duplicate
		head + "---\n" + head,                          // a second object
	} {
		var sa corev1.ServiceAccount
		if err := strictDecode([]byte(bad), &sa); err == nil {
			t.Errorf("decoded without complaint:\n%s", bad)
		}
	}
	var sa corev1.ServiceAccount
	if err := strictDecode([]byte(head+"automountServiceAccountToken: false\n"), &sa); err != nil {
		t.Errorf("a good ServiceAccount: %v", err)
	}
}

const namespace = "socklife"

// agentLabels are the labels of the DaemonSet's pods, which the Service and
// the PodMonitor select.
var agentLabels = map[string]string{"app.kubernetes.io/name": "socklife"}

func daemonSet(t *testing.T) *appsv1.DaemonSet {
	t.Helper()
	var ds appsv1.DaemonSet
	decodeStrict(t, "daemonset.yaml", &ds)
	return &ds
}

func TestManifestsDecodeStrictly(t *testing.T) {
	var ns corev1.Namespace
	decodeStrict(t, "namespace.yaml", &ns)
	if ns.APIVersion != "v1" || ns.Kind != "Namespace" || ns.Name != namespace {
		t.Errorf("namespace.yaml: %s %s %s", ns.APIVersion, ns.Kind, ns.Name)
	}
	var sa corev1.ServiceAccount
	decodeStrict(t, "serviceaccount.yaml", &sa)
	if sa.APIVersion != "v1" || sa.Kind != "ServiceAccount" || sa.Namespace != namespace {
		t.Errorf("serviceaccount.yaml: %s %s in %q", sa.APIVersion, sa.Kind, sa.Namespace)
	}
	// socklife never talks to the API server: no token for it to steal.
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("serviceaccount.yaml: automountServiceAccountToken must be false")
	}
	ds := daemonSet(t)
	if ds.APIVersion != "apps/v1" || ds.Kind != "DaemonSet" || ds.Namespace != namespace {
		t.Errorf("daemonset.yaml: %s %s in %q", ds.APIVersion, ds.Kind, ds.Namespace)
	}
	if ds.Spec.Template.Spec.ServiceAccountName != sa.Name {
		t.Errorf("daemonset.yaml runs as service account %q, serviceaccount.yaml is %q", ds.Spec.Template.Spec.ServiceAccountName, sa.Name)
	}
	var svc corev1.Service
	decodeStrict(t, "service.yaml", &svc)
	if svc.APIVersion != "v1" || svc.Kind != "Service" || svc.Namespace != namespace {
		t.Errorf("service.yaml: %s %s in %q", svc.APIVersion, svc.Kind, svc.Namespace)
	}
}

func TestDaemonSetServes(t *testing.T) {
	ds := daemonSet(t)
	if !labelsMatch(ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) || !labelsMatch(agentLabels, ds.Spec.Template.Labels) {
		t.Errorf("pod labels %v, selector %v, want %v", ds.Spec.Template.Labels, ds.Spec.Selector.MatchLabels, agentLabels)
	}
	c := ds.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" || !slices.Contains(c.Args, "--web.listen-address=:9931") {
		t.Errorf("args %q: want serve --web.listen-address=:9931", c.Args)
	}
	if i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" }); i < 0 || c.Ports[i].ContainerPort != 9931 {
		t.Errorf("ports %v: want metrics on 9931", c.Ports)
	}
	metrics := intstr.FromString("metrics")
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port != metrics || (p.HTTPGet.Path != "/" && p.HTTPGet.Path != "/metrics") {
			t.Errorf("%s probe: want an HTTP GET of / or /metrics on the metrics port", name)
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[r]
		lim, hasLim := c.Resources.Limits[r]
		if !hasReq || !hasLim {
			t.Errorf("%s: request and limit both needed", r)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s: request %s above limit %s", r, req.String(), lim.String())
		}
	}
	// The 8 MiB ring buffer and the hash maps are charged to the pod.
	if lim := c.Resources.Limits[corev1.ResourceMemory]; lim.Cmp(resource.MustParse("256Mi")) < 0 {
		t.Errorf("memory limit %s leaves no room for the BPF maps", lim.String())
	}
	if ds.Spec.Template.Spec.TerminationGracePeriodSeconds == nil {
		t.Error("terminationGracePeriodSeconds unset")
	}
}

func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestServiceSelectsTheAgents(t *testing.T) {
	var svc corev1.Service
	decodeStrict(t, "service.yaml", &svc)
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("clusterIP %q: the Service must be headless, one target per agent", svc.Spec.ClusterIP)
	}
	if !labelsMatch(svc.Spec.Selector, daemonSet(t).Spec.Template.Labels) {
		t.Errorf("selector %v does not select the agents", svc.Spec.Selector)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort != intstr.FromString("metrics") || svc.Spec.Ports[0].Port != 9931 {
		t.Errorf("ports %v: want 9931 to the metrics port", svc.Spec.Ports)
	}
}

// podMonitor holds the fields of monitoring.coreos.com/v1 PodMonitor that
// socklife relies on; a field it does not know fails the decode.
type podMonitor struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		PodMetricsEndpoints []struct {
			Port        string `json:"port"`
			Path        string `json:"path"`
			Interval    string `json:"interval"`
			Relabelings []struct {
				SourceLabels []string `json:"sourceLabels"`
				TargetLabel  string   `json:"targetLabel"`
				Action       string   `json:"action"`
				Regex        string   `json:"regex"`
			} `json:"relabelings"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

type objectMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
}

func TestPodMonitorScrapesTheAgents(t *testing.T) {
	var pm podMonitor
	decodeStrict(t, "podmonitor.yaml", &pm)
	if pm.APIVersion != "monitoring.coreos.com/v1" || pm.Kind != "PodMonitor" || pm.Metadata.Namespace != namespace {
		t.Errorf("podmonitor.yaml: %s %s in %q", pm.APIVersion, pm.Kind, pm.Metadata.Namespace)
	}
	if !labelsMatch(pm.Spec.Selector.MatchLabels, daemonSet(t).Spec.Template.Labels) {
		t.Errorf("selector %v does not select the agents", pm.Spec.Selector.MatchLabels)
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("%d endpoints, want 1", len(pm.Spec.PodMetricsEndpoints))
	}
	ep := pm.Spec.PodMetricsEndpoints[0]
	if ep.Port != "metrics" || ep.Path != "/metrics" {
		t.Errorf("endpoint %s%s, want metrics/metrics", ep.Port, ep.Path)
	}
	// The alerts and the dashboard group by node, and read pod and
	// container as socklife's, not the agent's.
	var node, drop bool
	for _, r := range ep.Relabelings {
		if slices.Equal(r.SourceLabels, []string{"__meta_kubernetes_pod_node_name"}) && r.TargetLabel == "node" {
			node = true
		}
		if strings.EqualFold(r.Action, "labeldrop") {
			re := regexp.MustCompile("^(?:" + r.Regex + ")$")
			drop = re.MatchString("pod") && re.MatchString("container") && !re.MatchString("namespace")
		}
	}
	if !node || !drop {
		t.Errorf("relabelings must set node from the pod's node (%v) and drop the target's pod and container labels (%v)", node, drop)
	}
}

// kustomization holds the fields of deploy/kustomization.yaml.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	var k kustomization
	decodeStrict(t, "kustomization.yaml", &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" || k.Namespace != namespace {
		t.Errorf("kustomization.yaml: %s %s namespace %q", k.APIVersion, k.Kind, k.Namespace)
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	resources := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(resources, files) {
		t.Errorf("resources %v, manifests in deploy/ %v", resources, files)
	}
	image := daemonSet(t).Spec.Template.Spec.Containers[0].Image
	if len(k.Images) != 1 || k.Images[0].Name != image || k.Images[0].NewName == "" {
		t.Errorf("images %+v: want one rewriting the DaemonSet's %q", k.Images, image)
	}
}
