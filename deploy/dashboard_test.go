package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const dashboardFile = "grafana/socklife.json"

// dashboard holds the parts of a Grafana dashboard this test reads.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// target is one query of a panel.
type target struct {
	panel, expr, legend string
}

// targets lists every panel's queries, collapsed rows' included.
func (d dashboard) targets() []target {
	var out []target
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, target{p.Title, tg.Expr, tg.LegendFormat})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// The panels the issue asks for, and the variables they are templated by.
func TestDashboardHasThePanels(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard needs a uid and a title")
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	for _, want := range []string{"node", "pod_namespace", "pod"} {
		if !slices.Contains(vars, want) {
			t.Errorf("no $%s variable (have %v)", want, vars)
		}
	}
	all := ""
	for _, tg := range d.targets() {
		if tg.expr == "" {
			t.Errorf("panel %q: a target without an expression", tg.panel)
		}
		all += tg.expr + "\n"
		// Every panel about pods follows the pod variables.
		if strings.Contains(tg.expr, "socklife_process_") || strings.Contains(tg.expr, "socklife_listener_") {
			for _, v := range []string{`node=~"$node"`, `pod_namespace=~"$pod_namespace"`, `pod=~"$pod"`} {
				if !strings.Contains(tg.expr, v) {
					t.Errorf("panel %q does not follow %s: %s", tg.panel, v, tg.expr)
				}
			}
		}
	}
	for what, metric := range map[string]string{
		"CLOSE_WAIT per process":     "socklife_process_close_wait_sockets",
		"fds":                        "socklife_process_open_fds",
		"fd limit":                   "socklife_process_max_fds",
		"accept queue fill":          "socklife_listener_accept_queue_length",
		"drops per listener":         "socklife_listener_drops_total",
		"accept wait quantiles":      "histogram_quantile(0.99, sum by (le, node, pod_namespace, pod, listener) (rate(socklife_listener_accept_wait_seconds_bucket",
		"stalls":                     "socklife_listener_stalled",
		"lost events":                "socklife_events_lost_total",
		"namespace listen overflows": "socklife_tcpext_listen_overflows_total",
	} {
		if !strings.Contains(all, metric) {
			t.Errorf("no panel for %s (%s)", what, metric)
		}
	}
}

func TestDashboardNamesOnlyCatalogMetrics(t *testing.T) {
	d := loadDashboard(t)
	legendLabel := regexp.MustCompile(`\{\{\s*([a-zA-Z0-9_]+)\s*\}\}`)
	for _, tg := range d.targets() {
		checkCatalog(t, "panel "+tg.panel, tg.expr)
		for _, m := range legendLabel.FindAllStringSubmatch(tg.legend, -1) {
			if !slices.Contains(labels, m[1]) {
				t.Errorf("panel %q: legend label %q is not in the metric catalog", tg.panel, m[1])
			}
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			checkCatalog(t, "variable "+v.Name, fmt.Sprint(q["query"]))
		}
	}
}

// grafanaVars stand in for the dashboard's variables, so that promtool can
// parse its expressions.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m",
	"$node", ".*",
	"$pod_namespace", ".*",
	"$pod", ".*",
)

// Every panel's expression parses, with Prometheus's own parser: promtool
// checks them as recording rules.
func TestDashboardExpressionsParse(t *testing.T) {
	d := loadDashboard(t)
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for _, tg := range d.targets() {
		expr := grafanaVars.Replace(tg.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("panel %q: an unknown variable in %s", tg.panel, tg.expr)
		}
		rules = append(rules, rule{fmt.Sprintf("dashboard:expr%d", len(rules)), expr})
	}
	y, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(file, y, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := promtool(t, "check", "rules", file)
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard's expressions: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(rules)); !strings.Contains(out, want) {
		t.Errorf("promtool: %s, want %q", out, want)
	}
}
