package deploy

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// catalog is socklife serve's metric catalog (docs/metrics.md): every name
// the rules and the dashboard may use, with its type.
var catalog = map[string]string{
	"socklife_listener_accept_queue_length":      "gauge",
	"socklife_listener_accept_queue_limit":       "gauge",
	"socklife_listener_drops_total":              "counter",
	"socklife_listener_synack_retransmits_total": "counter",
	"socklife_listener_accepts_total":            "counter",
	"socklife_listener_accept_wait_seconds":      "histogram",
	"socklife_listener_stalled":                  "gauge",
	"socklife_listener_stall_seconds_total":      "counter",
	"socklife_process_close_wait_sockets":        "gauge",
	"socklife_process_close_wait_oldest_seconds": "gauge",
	"socklife_process_open_fds":                  "gauge",
	"socklife_process_max_fds":                   "gauge",
	"socklife_tcp_sockets":                       "gauge",
	"socklife_tcp_connections_opened_total":      "counter",
	"socklife_tcp_connections_closed_total":      "counter",
	"socklife_tcp_connect_failures_total":        "counter",
	"socklife_tcpext_listen_overflows_total":     "counter",
	"socklife_tcpext_listen_drops_total":         "counter",
	"socklife_tcpext_syncookies_sent_total":      "counter",
	"socklife_tcpext_syncookies_recv_total":      "counter",
	"socklife_tcpext_syncookies_failed_total":    "counter",
	"socklife_tcpext_reqq_full_do_cookies_total": "counter",
	"socklife_tcpext_reqq_full_drop_total":       "counter",
	"socklife_build_info":                        "gauge",
	"socklife_hook_info":                         "gauge",
	"socklife_events_lost_total":                 "counter",
	"socklife_scrape_collection_seconds":         "gauge",
}

// labels are the catalog's labels, and those scraping adds: the PodMonitor's
// node and agent_pod, Prometheus's instance and job, the Operator's
// namespace, and le of histogram buckets.
var labels = []string{
	"netns", "netns_name", "listener", "comm", "container", "pod", "pod_namespace", "pid",
	"state", "role", "closed_by", "version", "goversion", "kernel", "feature", "hook", "cause",
	"node", "agent_pod", "instance", "job", "namespace", "le",
}

var metricName = regexp.MustCompile(`\bsocklife_[a-z0-9_]+`)

// strangers lists what in expr is not in the catalog: socklife_ names (a
// histogram's series are its name with _bucket, _sum or _count), and labels
// matched on or grouped by that no catalog metric has and scraping does not
// add.
func strangers(expr string) []string {
	var out []string
	for _, name := range metricName.FindAllString(expr, -1) {
		if _, ok := catalog[name]; ok {
			continue
		}
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if base == name || catalog[base] != "histogram" {
			out = append(out, "metric "+name)
		}
	}
	for _, re := range labelUse {
		for _, m := range re.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(m[1], ",") {
				if l = strings.TrimSpace(l); l != "" && l != "__name__" && !slices.Contains(labels, l) {
					out = append(out, "label "+l)
				}
			}
		}
	}
	return out
}

// labelUse finds the label names an expression matches on or groups by.
var labelUse = []*regexp.Regexp{
	regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`),
	regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`),
}

// checkCatalog fails the test for each stranger in expr.
func checkCatalog(t *testing.T, where, expr string) {
	t.Helper()
	for _, s := range strangers(expr) {
		t.Errorf("%s: %s is not in the metric catalog: %s", where, s, expr)
	}
}

// The check itself must catch what it is for.
func TestCatalogCheckCatchesStrangers(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`rate(socklife_listener_drops_total{pod=~"a"}[5m])`, nil},
		{`histogram_quantile(0.9, sum by (le, listener) (rate(socklife_listener_accept_wait_seconds_bucket[5m])))`, nil},
		{`socklife_listener_drops`, []string{"metric socklife_listener_drops"}},                   // a counter without _total
		{`socklife_process_open_fds_bucket`, []string{"metric socklife_process_open_fds_bucket"}}, // not a histogram
		{`socklife_process_open_fds{namespace_pod="x"}`, []string{"label namespace_pod"}},
		{`sum by (pod, podname) (socklife_process_open_fds)`, []string{"label podname"}},
		{`a unless on (instance, netns_nam) b`, []string{"label netns_nam"}},
	} {
		if got := strangers(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("%s: strangers %q, want %q", tc.expr, got, tc.want)
		}
	}
}
