package tracing

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	yaml "go.yaml.in/yaml/v3"
)

// The alert rules and the dashboard are written against exported metric
// names; these tests parse both files and fail if either names a metric the
// handler does not export.

const (
	alertsPath    = "../deploy/prometheus/alerts.yml"
	dashboardPath = "../deploy/grafana/aof-gateway.json"
)

// grafanaVariables are the dashboard's template variables that may stand
// where PromQL wants a duration; Prometheus never sees them, Grafana
// substitutes them first, and so does promQLMetrics.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// grafanaLabelValues is the one Grafana query function the dashboard's
// variables use: label_values(<series selector>, <label>).
var grafanaLabelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)

// promQLMetrics parses expr with Prometheus' own PromQL parser and returns
// the metric names its selectors select, in order of appearance.
func promQLMetrics(expr string) ([]string, error) {
	if m := grafanaLabelValues.FindStringSubmatch(expr); m != nil {
		expr = m[1]
	}
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVariables.Replace(expr))
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if name == "" && m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		names = append(names, name)
		return nil
	})
	return names, nil
}

func TestPromQLMetrics(t *testing.T) {
	tests := []struct {
		expr    string
		want    []string
		wantErr bool
	}{
		{expr: `max by (job, instance) (activation_queue_depth) > 0`, want: []string{"activation_queue_depth"}},
		{expr: `histogram_quantile(0.99, sum by (le) (rate(a_bucket{instance=~"$instance", x="y"}[$__rate_interval])))`, want: []string{"a_bucket"}},
		{expr: `rate(x_total[1m]) * 60 > bool 10 or on(instance) y`, want: []string{"x_total", "y"}},
		{expr: `label_values(target_info, instance)`, want: []string{"target_info"}},
		{expr: `{__name__="by_matcher", job="j"} offset 5m`, want: []string{"by_matcher"}},
		{expr: `sum by (kind) (rate(backpressure_total{kind!="tail"}[5m]))`, want: []string{"backpressure_total"}},
		{expr: `rate(x_total[1m]`, wantErr: true},
		{expr: `increase(x_total[1m]) >`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := promQLMetrics(tt.expr)
		if tt.wantErr {
			if err == nil {
				t.Errorf("promQLMetrics(%q) = %v, want a parse error", tt.expr, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("promQLMetrics(%q) = %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
}

// exportedSampleNames scrapes providers whose every instrument has a value.
func exportedSampleNames(t *testing.T) map[string]bool {
	p, _ := exercisedProviders(t)
	_, names := scrape(t, p)
	return names
}

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestAlertRulesUseExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true) // a misspelt key (exp:, annotation:) is an error, as in Prometheus
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("parse %s: %v", alertsPath, err)
	}
	exported := exportedSampleNames(t)

	// REFERENCE.md "Alerts operators already run": the metric each one
	// must watch, and the smallest "for" it may have.
	required := map[string]time.Duration{
		"activation_queue_depth":                60 * time.Second,
		"hydration_latency_milliseconds_bucket": 5 * time.Minute,
		"upload_retry_attempts_total":           0,
		"flush_failures_total":                  0,
		"metadata_failures_total":               0,
	}
	seen := map[string]bool{}
	names := map[string]bool{}
	if len(rules.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	for _, g := range rules.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: needs a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("rule %+v: needs alert and expr", r)
				continue
			}
			if names[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			names[r.Alert] = true
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs labels.severity, annotations.summary and annotations.description", r.Alert)
			}
			var forDur time.Duration
			if r.For != "" {
				if forDur, err = time.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			metrics, err := promQLMetrics(r.Expr)
			if err != nil {
				t.Errorf("alert %s: expr %q: %v", r.Alert, r.Expr, err)
			}
			if len(metrics) == 0 {
				t.Errorf("alert %s: expr %q selects no metric", r.Alert, r.Expr)
			}
			for _, m := range metrics {
				if !exported[m] {
					t.Errorf("alert %s: metric %s is not exported by /metrics", r.Alert, m)
				}
				if min, ok := required[m]; ok {
					seen[m] = true
					if forDur < min {
						t.Errorf("alert %s: for %v, REFERENCE.md asks at least %v", r.Alert, forDur, min)
					}
				}
			}
		}
	}
	for m := range required {
		if !seen[m] {
			t.Errorf("no alert watches %s (REFERENCE.md alert)", m)
		}
	}
}

type grafanaDashboard struct {
	SchemaVersion int    `json:"schemaVersion"`
	Title         string `json:"title"`
	UID           string `json:"uid"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func TestDashboardUsesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("parse %s: %v", filepath.Base(dashboardPath), err)
	}
	if d.SchemaVersion < 36 || d.Title == "" || d.UID == "" {
		t.Errorf("schemaVersion %d, title %q, uid %q: want >= 36 and both set", d.SchemaVersion, d.Title, d.UID)
	}
	exported := exportedSampleNames(t)

	var dsVar bool
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			var q string
			dsVar = json.Unmarshal(v.Query, &q) == nil && q == "prometheus" && v.Name == "datasource"
		case "query":
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Errorf("variable %s: query: %v", v.Name, err)
			}
			if ms, err := promQLMetrics(q.Query); err != nil || len(ms) == 0 || !exported[ms[0]] {
				t.Errorf("variable %s: query %q does not select an exported metric (%v)", v.Name, q.Query, err)
			}
		}
	}
	if !dsVar {
		t.Error("no Prometheus datasource variable named datasource")
	}

	ids := map[int]bool{}
	allExprs := ""
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		for _, tg := range p.Targets {
			allExprs += tg.Expr + "\n"
			ms, err := promQLMetrics(tg.Expr)
			if err != nil {
				t.Errorf("panel %q %s: %q: %v", p.Title, tg.RefID, tg.Expr, err)
			}
			if len(ms) == 0 {
				t.Errorf("panel %q %s: %q selects no metric", p.Title, tg.RefID, tg.Expr)
			}
			for _, m := range ms {
				if !exported[m] {
					t.Errorf("panel %q %s: metric %s is not exported by /metrics", p.Title, tg.RefID, m)
				}
			}
		}
	}
	// The panels the brief asks for, by the metric they must show.
	for _, want := range []string{"tier0_bytes", "tier1_bytes", "activation_queue_depth", "hydration_queue_depth",
		"compression_queue_depth", "histogram_quantile(0.5, sum by (le) (rate(hydration_latency_milliseconds_bucket",
		"histogram_quantile(0.9, sum by (le) (rate(hydration_latency_milliseconds_bucket",
		"histogram_quantile(0.99, sum by (le) (rate(hydration_latency_milliseconds_bucket",
		"rate(upload_retry_attempts_total", "rate(ingest_messages_total", "sum by (kind) (rate(backpressure_total"} {
		if !strings.Contains(allExprs, want) {
			t.Errorf("no dashboard query contains %q", want)
		}
	}
}

const alertsTestPath = "../deploy/prometheus/alerts_test.yml"

// promtoolPath finds promtool: $AOF_PROMTOOL, else <repo>/bin/promtool
// (installed by `make tools`), else PATH.
func promtoolPath() (string, bool) {
	if p := os.Getenv("AOF_PROMTOOL"); p != "" {
		return p, true
	}
	if p, err := filepath.Abs("../bin/promtool"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	p, err := exec.LookPath("promtool")
	return p, err == nil
}

// promtoolRuleTests is the part of a promtool rule test file this test
// checks for coverage.
type promtoolRuleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTests []struct {
			EvalTime  string           `yaml:"eval_time"`
			AlertName string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// Every alert of alerts.yml has, in alerts_test.yml, a case where a
// synthetic series breaks its threshold and the alert fires, and one where
// it stays silent; promtool evaluates them with Prometheus' own engine.
func TestAlertRulesFireOnlyPastTheirThresholds(t *testing.T) {
	raw, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	raw, err = os.ReadFile(alertsTestPath)
	if err != nil {
		t.Fatal(err)
	}
	var cases promtoolRuleTests
	if err := yaml.Unmarshal(raw, &cases); err != nil {
		t.Fatalf("parse %s: %v", alertsTestPath, err)
	}
	if !slices.Equal(cases.RuleFiles, []string{filepath.Base(alertsPath)}) {
		t.Errorf("%s: rule_files %v, want [%s]", alertsTestPath, cases.RuleFiles, filepath.Base(alertsPath))
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range cases.Tests {
		for _, a := range tc.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			} else {
				silent[a.AlertName] = true
			}
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !fires[r.Alert] || !silent[r.Alert] {
				t.Errorf("alert %s: %s needs a case where it fires (%v) and one where it stays silent (%v)",
					r.Alert, alertsTestPath, fires[r.Alert], silent[r.Alert])
			}
		}
	}

	promtool, ok := promtoolPath()
	if !ok {
		// Like versitygw and Jaeger: a missing tool fails, it does not
		// pass for a checked alert.
		t.Fatal("promtool not found (AOF_PROMTOOL, ./bin/promtool, PATH): run `make tools` to install it into ./bin")
	}
	out, err := exec.Command(promtool, "test", "rules", alertsTestPath).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules %s: %v\n%s", alertsTestPath, err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules did not report SUCCESS:\n%s", out)
	}
}
