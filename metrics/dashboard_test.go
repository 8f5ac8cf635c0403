package metrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

var update = flag.Bool("update", false, "rewrite the committed deploy files from the generator")

// composeOptions are the options the committed deploy/ tree is generated
// with: inside the compose network Prometheus reaches the program as
// society:9464 and Grafana reaches Prometheus as prometheus:9090.
var composeOptions = DeployOptions{
	Target:        "society:9464",
	PrometheusURL: "http://prometheus:9090",
}

// TestDeployTreeIsGenerated keeps the committed deploy/ files equal to what
// the generator writes. Run with -update after changing the generator.
func TestDeployTreeIsGenerated(t *testing.T) {
	files, err := DeployFiles(composeOptions)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join("..", "deploy")
	for _, name := range sortedKeys(files) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(root, filepath.FromSlash(name))
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, files[name], 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./metrics -run TestDeployTreeIsGenerated -update)", err)
			}
			if !bytes.Equal(got, files[name]) {
				t.Errorf("%s differs from the generator's output; run go test ./metrics -run TestDeployTreeIsGenerated -update", path)
			}
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestDeployOptions(t *testing.T) {
	cases := []struct {
		name    string
		o       DeployOptions
		wantErr string
		want    map[string]string // file → substring
	}{
		{name: "defaults", want: map[string]string{
			PrometheusConfigFile: `targets: ["127.0.0.1:9464"]`,
			DataSourceFile:       `url: "http://127.0.0.1:9090"`,
			DashboardProvider:    `path: "/var/lib/grafana/dashboards"`,
		}},
		{name: "sub-second scrape", o: DeployOptions{ScrapeInterval: 200 * time.Millisecond}, want: map[string]string{
			PrometheusConfigFile: "scrape_interval: 200ms",
			DataSourceFile:       "timeInterval: 200ms",
		}},
		{name: "minute scrape", o: DeployOptions{ScrapeInterval: time.Minute}, want: map[string]string{
			PrometheusConfigFile: "scrape_interval: 60s",
		}},
		{name: "several targets", o: DeployOptions{Target: "run:9464,agents:9465,analyze:9466"}, want: map[string]string{
			PrometheusConfigFile: `targets: ["run:9464", "agents:9465", "analyze:9466"]`,
		}},
		{name: "bad target", o: DeployOptions{Target: "society"}, wantErr: `target "society"`},
		{name: "bad second target", o: DeployOptions{Target: "run:9464,agents"}, wantErr: `target "agents"`},
		{name: "bad url", o: DeployOptions{PrometheusURL: "prometheus:9090"}, wantErr: `prometheus url`},
		{name: "quote", o: DeployOptions{DashboardsPath: `/x"y`}, wantErr: `quotes`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files, err := DeployFiles(c.o)
			if c.wantErr != "" {
				if !errors.Is(err, ErrDeployOptions) || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("got error %v, want ErrDeployOptions containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for f, sub := range c.want {
				if !strings.Contains(string(files[f]), sub) {
					t.Errorf("%s: got\n%s\nwant it to contain %q", f, files[f], sub)
				}
			}
		})
	}
}

// panelQuery is one query of a dashboard panel.
type panelQuery struct {
	Panel, Expr string
}

// dashboardQueries reads every query from the dashboard JSON, as Grafana
// would, rather than from the generator's own structures.
func dashboardQueries(t *testing.T, dash []byte) []panelQuery {
	t.Helper()
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var out []panelQuery
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, panelQuery{p.Title, tg.Expr})
		}
	}
	if len(out) == 0 {
		t.Fatal("dashboard has no queries")
	}
	return out
}

// expand replaces Grafana's variables as Grafana would with "All" selected.
func expand(expr, window string) string {
	return strings.NewReplacer("$__rate_interval", window, "$instance", ".*", "$run", ".*", "$model", ".*", "$strategy", ".*").Replace(expr)
}

// registeredNames returns the series names the program exposes: each family
// and, for histograms, its _bucket, _sum and _count series.
func registeredNames(t *testing.T) map[string]string {
	t.Helper()
	reg := prometheus.NewRegistry()
	exercise(New(reg, BuildInfo{Version: "test"}), 0)
	names := map[string]string{} // series name → family name
	for name, f := range gather(t, reg) {
		names[name] = name
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = name
			}
		}
	}
	return names
}

// TestDashboardQueries parses every panel's query with Prometheus's own
// parser and checks that every metric it names is one the program
// registers, and that every registered metric is charted somewhere.
func TestDashboardQueries(t *testing.T) {
	dash, err := Dashboard()
	if err != nil {
		t.Fatal(err)
	}
	names := registeredNames(t)
	charted := map[string]bool{}
	p := parser.NewParser(parser.Options{})
	for _, q := range dashboardQueries(t, dash) {
		t.Run(q.Panel, func(t *testing.T) {
			e, err := p.ParseExpr(expand(q.Expr, "1m"))
			if err != nil {
				t.Fatalf("query %q does not parse: %v", q.Expr, err)
			}
			n := 0
			parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
				vs, ok := node.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				name := vs.Name
				for _, m := range vs.LabelMatchers {
					if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
						name = m.Value
					}
				}
				n++
				fam, ok := names[name]
				if !ok {
					t.Errorf("query %q uses %s, which the program does not register", q.Expr, name)
				}
				charted[fam] = true
				return nil
			})
			if n == 0 {
				t.Errorf("query %q selects no metric", q.Expr)
			}
		})
	}
	for series, fam := range names {
		if series == fam && !charted[fam] {
			t.Errorf("metric %s is registered but no panel charts it", fam)
		}
	}
}

func TestDashboardShape(t *testing.T) {
	dash, err := Dashboard()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Desc    string `json:"description"`
			GridPos struct {
				X, Y, W, H int
			} `json:"gridPos"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID != DashboardUID {
		t.Errorf("uid: got %q, want %q", d.UID, DashboardUID)
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d is zero or repeated", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && p.Desc == "" {
			t.Errorf("panel %q has no description; users read it to know what the panel means", p.Title)
		}
		if p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q overflows the grid: x %d + w %d > 24", p.Title, p.GridPos.X, p.GridPos.W)
		}
	}
}

// WriteDeploy writes DeployFiles' tree under a directory, in sorted order,
// and leaves the directory's other files alone; bad options write nothing.
func TestWriteDeploy(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "grafana", "notes.txt")
	if err := os.MkdirAll(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	written, err := WriteDeploy(dir, composeOptions)
	if err != nil {
		t.Fatal(err)
	}
	files, err := DeployFiles(composeOptions)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, name := range []string{DashboardFile, DashboardProvider, DataSourceFile, PrometheusConfigFile} { // sorted
		want = append(want, filepath.Join(dir, filepath.FromSlash(name)))
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, files[name]) {
			t.Errorf("%s: got %d bytes (%v), want DeployFiles' %d", name, len(got), err, len(files[name]))
		}
	}
	if !slices.Equal(written, want) {
		t.Errorf("got paths %q, want %q", written, want)
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "kept" {
		t.Errorf("other file: got %q, %v; want it untouched", b, err)
	}

	empty := filepath.Join(t.TempDir(), "new")
	if written, err := WriteDeploy(empty, DeployOptions{Target: "nohost"}); !errors.Is(err, ErrDeployOptions) || len(written) > 0 {
		t.Errorf("bad target: got %q, %v; want nothing written and ErrDeployOptions", written, err)
	}
	if _, err := os.Stat(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bad target: %s was created", empty)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteDeploy(file, composeOptions); err == nil || errors.Is(err, ErrDeployOptions) {
		t.Errorf("dir is a file: got %v, want a write error", err)
	}
}
