package tracing

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// The alert rules and the dashboard are written against exported metric
// names; these tests parse both files and fail if either names a metric the
// handler does not export.

const (
	alertsPath    = "../deploy/prometheus/alerts.yml"
	dashboardPath = "../deploy/grafana/aof-gateway.json"
)

var (
	promQLQuoted   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promQLMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promQLRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promQLGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promQLIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	promQLKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// promQLMetrics returns the metric names an expression selects: identifiers
// that are not functions, keywords, label names or durations.
func promQLMetrics(expr string) []string {
	s := promQLQuoted.ReplaceAllString(expr, " ")
	s = promQLMatchers.ReplaceAllString(s, " ")
	s = promQLRange.ReplaceAllString(s, " ")
	s = promQLGrouping.ReplaceAllString(s, " ")
	var out []string
	for _, m := range promQLIdent.FindAllStringSubmatch(s, -1) {
		name := strings.TrimRight(strings.TrimSuffix(strings.TrimSpace(m[0]), "("), " ")
		if m[1] != "" || promQLKeywords[strings.ToLower(name)] {
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestPromQLMetrics(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`max by (job, instance) (activation_queue_depth) > 0`, []string{"activation_queue_depth"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_bucket{instance=~"$instance", x="y"}[$__rate_interval])))`, []string{"a_bucket"}},
		{`rate(x_total[1m]) * 60 > bool 10 or on(instance) y`, []string{"x_total", "y"}},
		{`label_values(target_info, instance)`, []string{"target_info", "instance"}},
	}
	for _, tt := range tests {
		if got := promQLMetrics(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("promQLMetrics(%q) = %v, want %v", tt.expr, got, tt.want)
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
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") {
				t.Errorf("alert %s: unbalanced parentheses in %q", r.Alert, r.Expr)
			}
			metrics := promQLMetrics(r.Expr)
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
			if ms := promQLMetrics(q.Query); len(ms) == 0 || !exported[ms[0]] {
				t.Errorf("variable %s: query %q does not select an exported metric", v.Name, q.Query)
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
			ms := promQLMetrics(tg.Expr)
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
