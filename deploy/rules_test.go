package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/socklife/socklife/internal/testutil"
	"sigs.k8s.io/yaml"
)

const (
	rulesFile     = "rules/socklife.rules.yml"
	rulesTestFile = "rules/socklife.rules.test.yml"
)

// ruleGroups holds a Prometheus rules file's fields.
type ruleGroups struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

func loadRules(t *testing.T) ruleGroups {
	t.Helper()
	var rg ruleGroups
	decodeStrict(t, rulesFile, &rg)
	if len(rg.Groups) == 0 {
		t.Fatalf("%s: no groups", rulesFile)
	}
	return rg
}

// The alerts the issue asks for, one each.
var alerts = []string{
	"SocklifeCloseWaitLeak",
	"SocklifeFdExhaustionForecast",
	"SocklifeAcceptQueueOverflow",
	"SocklifeListenerStalled",
	"SocklifeEventsLost",
}

func promtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testutil.ServerBinary(t, "promtool"), args...).CombinedOutput()
	return string(out), err
}

func TestRulesPassPromtoolCheck(t *testing.T) {
	if out, err := promtool(t, "check", "rules", rulesFile); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

func TestRulesUnitTests(t *testing.T) {
	if out, err := promtool(t, "test", "rules", rulesTestFile); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// Each guard of each alert matters: with it removed or loosened the unit
// tests fail, so they exercise it and do not merely pass.
func TestRulesUnitTestsCatchEachGuardRemoved(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ name, old, new string }{
		{"close-wait floor", `socklife_process_close_wait_sockets{pid!="other"} >= 10` + "\n", `socklife_process_close_wait_sockets{pid!="other"} >= 0` + "\n"},
		{"close-wait skips pid=other", `socklife_process_close_wait_sockets{pid!="other"} >= 10` + "\n", "socklife_process_close_wait_sockets >= 10\n"},
		{"close-wait grows", "and delta(socklife_process_close_wait_sockets[15m]) > 0\n", ""},
		{"close-wait stays", "and min_over_time(socklife_process_close_wait_sockets[15m]) > 0\n", ""},
		{"close-wait for", "        for: 5m\n", ""},
		{"fd forecast skips pid=other", `socklife_process_open_fds{pid!="other"}[30m]`, "socklife_process_open_fds[30m]"},
		{"fd forecast horizon", "[30m], 3600)", "[30m], 360000)"},
		{"overflow per namespace", "          or (\n", "          and (\n"},
		{"overflow not twice", "unless on (instance, netns) increase(socklife_listener_drops_total[5m]) > 0\n", ""},
		{"overflow counts increase", "increase(socklife_listener_drops_total[5m]) > 0\n          or", "socklife_listener_drops_total > 0\n          or"},
		{"stalled for", "        for: 1m\n", ""},
		{"lost grows", "increase(socklife_events_lost_total[10m]) > 0", "socklife_events_lost_total > 0"},
	} {
		t.Run(m.name, func(t *testing.T) {
			if strings.Count(string(rules), m.old) < 1 {
				t.Fatalf("%q is not in %s any more: update this test", m.old, rulesFile)
			}
			dir := t.TempDir()
			broken := strings.ReplaceAll(string(rules), m.old, m.new)
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(rulesFile)), []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			test := filepath.Join(dir, filepath.Base(rulesTestFile))
			if err := os.WriteFile(test, tests, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := promtool(t, "test", "rules", test); err == nil {
				t.Errorf("the unit tests pass with the %s guard broken:\n%s", m.name, out)
			}
		})
	}
}

// ruleTests holds the fields of a promtool unit test file this test reads.
type ruleTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			EvalTime  string `json:"eval_time"`
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// Every alert has a case where it fires and one where it does not; every
// alert says what to run next on the node.
func TestEveryAlertIsTestedAndSaysWhatToRun(t *testing.T) {
	rg := loadRules(t)
	var names []string
	for _, g := range rg.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			if r.Labels["severity"] == "" {
				t.Errorf("%s: no severity label", r.Alert)
			}
			if r.Annotations["summary"] == "" || !strings.Contains(r.Annotations["description"], "Next, on node {{ $labels.node }}: socklife ") {
				t.Errorf("%s: needs a summary, and a description saying what to run next on the node", r.Alert)
			}
		}
	}
	if !slices.Equal(names, alerts) {
		t.Errorf("alerts %v, want %v", names, alerts)
	}
	var rt ruleTests
	y, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(y, &rt); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, name := range alerts {
		if !fires[name] || !quiet[name] {
			t.Errorf("%s: a case that fires (%v) and one that does not (%v) are both needed", name, fires[name], quiet[name])
		}
	}
}

func TestRulesNameOnlyCatalogMetrics(t *testing.T) {
	templateLabel := regexp.MustCompile(`\$labels\.([a-zA-Z0-9_]+)`)
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			checkCatalog(t, r.Alert, r.Expr)
			for _, text := range r.Annotations {
				for _, m := range templateLabel.FindAllStringSubmatch(text, -1) {
					if !slices.Contains(labels, m[1]) {
						t.Errorf("%s: its annotations use label %q, not in the metric catalog", r.Alert, m[1])
					}
				}
			}
		}
	}
}

// prometheusRule holds the fields of monitoring.coreos.com/v1
// PrometheusRule that socklife relies on.
type prometheusRule struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       ruleGroups `json:"spec"`
}

// The Operator's PrometheusRule carries the very groups promtool checked.
func TestPrometheusRuleMatchesRulesFile(t *testing.T) {
	var pr prometheusRule
	decodeStrict(t, "prometheus-rules.yaml", &pr)
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Namespace != namespace {
		t.Errorf("prometheus-rules.yaml: %s %s in %q", pr.APIVersion, pr.Kind, pr.Metadata.Namespace)
	}
	if rg := loadRules(t); !reflect.DeepEqual(pr.Spec, rg) {
		t.Errorf("prometheus-rules.yaml's groups differ from %s: regenerate its spec from that file", rulesFile)
	}
}
