package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// DashboardUID is the Grafana dashboard's stable identifier: links to it
// survive a re-provisioning.
const DashboardUID = "society-run"

// DataSourceUID is the provisioned Prometheus data source's identifier.
const DataSourceUID = "society-prometheus"

// Filters the panels apply: the dashboard's instance, run, model and
// strategy variables. Their "All" value is the regular expression ".*".
//
// A run's series carry its id as the run label (forRun selects them);
// the rest describe a process (its model clients, its transport), and a
// panel shows those of the processes that follow or serve the selected
// runs (onRunInstances).
const (
	rateWindow = "$__rate_interval"
	byInstance = `instance=~"$instance"`
	byRun      = `run=~"$run"`
	forRun     = byInstance + "," + byRun
	byModel    = `model=~"$model"`
	byStrategy = `strategy=~"$strategy"`
)

// onRunInstances keeps the series of expr that come from a process
// following or serving one of the selected runs (one that exports its
// society_run_info).
func onRunInstances(expr string) string {
	return fmt.Sprintf("(%s and on (instance) society_run_info{%s})", expr, forRun)
}

// perRun aggregates a run-scoped counter or gauge by the run and the given
// labels. Every process following a run (its orchestrator, an analysis
// service) counts all of its answers: their figures are alternatives, not
// parts, so the largest is taken across processes, never their sum.
func perRun(expr, by string) string {
	return fmt.Sprintf("max by (run, %s) (sum by (run, instance, %s) (%s))", by, by, expr)
}

// panelKind is the Grafana visualisation of a panel.
type panelKind int

const (
	timeSeries panelKind = iota
	statPanel
	barGauge
)

// panelSpec describes one panel; Dashboard turns the list into Grafana's
// model with the foundation SDK.
type panelSpec struct {
	kind        panelKind
	title, desc string
	unit        string
	w, h        uint32
	min, max    *float64
	stack       bool
	showName    bool // a stat that shows its series' name (labels), not its value
	queries     []query
}

type query struct{ expr, legend string }

type rowSpec struct {
	title  string
	panels []panelSpec
}

func ptr[T any](v T) *T { return &v }

// rate is the per-second rate of a process's counter, summed by the given
// labels over the processes of the selected runs.
func rate(metric, match, by string) string {
	return fmt.Sprintf("sum by (%s) (%s)", by, onRunInstances(fmt.Sprintf("rate(%s{%s}[%s])", metric, join(byInstance, match), rateWindow)))
}

// runRate is the per-second rate of a run's counter by run and the given
// labels (see perRun).
func runRate(metric, match, by string) string {
	return perRun(fmt.Sprintf("rate(%s{%s}[%s])", metric, join(forRun, match), rateWindow), by)
}

// join joins label matchers, leaving out empty ones.
func join(matchers ...string) string {
	var out []string
	for _, m := range matchers {
		if m != "" {
			out = append(out, m)
		}
	}
	return strings.Join(out, ",")
}

// quantile is a latency quantile from a histogram that the server stored
// either as a native histogram (Prometheus with native histograms enabled)
// or as classic buckets (every other Prometheus): whichever exists answers.
func quantile(q, metric string) string {
	native := onRunInstances(fmt.Sprintf("rate(%s{%s,%s}[%s])", metric, byInstance, byModel, rateWindow))
	classic := onRunInstances(fmt.Sprintf("rate(%s_bucket{%s,%s}[%s])", metric, byInstance, byModel, rateWindow))
	return fmt.Sprintf("histogram_quantile(%s, sum by (model) %s)\nor\n"+
		"histogram_quantile(%s, sum by (model, le) %s)", q, native, q, classic)
}

// rows is the dashboard, top to bottom. Each description says what the
// panel means to someone watching a run. Run-scoped panels show one series
// per run, so that runs that overlap never add up.
func rows() []rowSpec {
	answers := "society_answers_total"
	received := perRun(fmt.Sprintf("%s{%s}", answers, forRun), "outcome")
	return []rowSpec{
		{"Run", []panelSpec{
			{kind: statPanel, title: "Progress", unit: "percentunit", w: 4, h: 5, min: ptr(0.0), max: ptr(1.0),
				desc:    "Share of each run's expected answers received so far, valid or invalid.",
				queries: []query{{fmt.Sprintf("max by (run) (society_run_progress_ratio{%s})", forRun), "{{run}}"}}},
			{kind: statPanel, title: "Time left", unit: "s", w: 4, h: 5,
				desc: "Answers a run still expects divided by its current answer rate. Empty once the run is complete or stalled.",
				queries: []query{{fmt.Sprintf("(max by (run) (society_answers_expected{%s}) - sum by (run) (%s)) / (sum by (run) (%s) > 0)",
					forRun, received, runRate(answers, "", "outcome")), "{{run}}"}}},
			{kind: timeSeries, title: "Answers expected and received", unit: "short", w: 10, h: 5,
				desc: "Expected answers (every agent × item × model × round) against those received, by outcome. Valid + invalid reaches expected when the run is complete.",
				queries: []query{
					{fmt.Sprintf("max by (run) (society_answers_expected{%s})", forRun), "{{run}} expected"},
					{received, "{{run}} {{outcome}}"},
				}},
			{kind: statPanel, title: "Build", unit: "none", w: 6, h: 5, showName: true,
				desc: "Version of the society program of each process scraped (orchestrator, agent hosts, analysis services).",
				queries: []query{{"max by (instance, version, revision, go_version) " + onRunInstances(fmt.Sprintf("society_build_info{%s}", byInstance)),
					"{{instance}} {{version}} {{revision}} {{go_version}}"}}},
			{kind: statPanel, title: "Models", unit: "none", w: 8, h: 7, showName: true,
				desc: "Each model of the run with its backend and query mode; synthetic=true marks answers from synthetic respondents " +
					"(the synthetic backend, or an endpoint served by society model-server), not from a language model.",
				queries: []query{{fmt.Sprintf("max by (model, backend, mode, synthetic) (society_model_info{%s})", byModel),
					"{{model}}: {{backend}}, {{mode}}, synthetic={{synthetic}}"}}},
			{kind: timeSeries, title: "Agents by state", unit: "short", w: 8, h: 7, stack: true,
				desc:    "Simulated people: answering (items of a published task outstanding), idle (alive, waiting for a task) and finished (the run is over), as the run's orchestrator sees them.",
				queries: []query{{fmt.Sprintf("max by (run, state) (society_agents{%s})", forRun), "{{run}} {{state}}"}}},
			{kind: barGauge, title: "Population by dominant value", unit: "short", w: 8, h: 7,
				desc:    "How many agents each strategy uses per dominant value; none is answered by the unprimed model.",
				queries: []query{{fmt.Sprintf("max by (run, strategy, value) (society_population_agents{%s,%s})", forRun, byStrategy), "{{run}} {{strategy}} {{value}}"}}},
		}},
		{"Answers", []panelSpec{
			{kind: timeSeries, title: "Answer rate", unit: "cps", w: 12, h: 8, stack: true,
				desc:    "Answers per second reaching the analysis, by run, instrument and outcome.",
				queries: []query{{runRate(answers, byModel, "instrument, outcome"), "{{run}} {{instrument}} {{outcome}}"}}},
			{kind: timeSeries, title: "Invalid answers", unit: "percentunit", w: 8, h: 8, min: ptr(0.0),
				desc: "Share of answers that could not be used (unparseable or refused after the stricter retry). They are kept with their raw text in invalid.jsonl.",
				queries: []query{{runRate(answers, byModel+`,outcome="invalid"`, "model, instrument") + "\n/\n" +
					runRate(answers, byModel, "model, instrument"), "{{run}} {{model}} {{instrument}}"}}},
			{kind: statPanel, title: "Tasks published", unit: "short", w: 4, h: 8,
				desc:    "Task messages sent to agent shards: one per shard, model, instrument and round.",
				queries: []query{{fmt.Sprintf("max by (run, model, instrument) (society_tasks_published_total{%s,%s})", forRun, byModel), "{{run}} {{model}} {{instrument}}"}}},
		}},
		{"Model endpoints", []panelSpec{
			{kind: timeSeries, title: "Model requests by outcome", unit: "reqps", w: 8, h: 8, stack: true,
				desc:    "Requests per second to each model endpoint from the processes of the selected runs: ok, retry (an attempt that failed and was retried), 429 (rate limited), 5xx, 4xx, timeout, canceled, error.",
				queries: []query{{rate("society_model_requests_total", byModel, "model, outcome"), "{{model}} {{outcome}}"}}},
			{kind: timeSeries, title: "Model errors", unit: "percentunit", w: 8, h: 8, min: ptr(0.0),
				desc: "Share of request attempts that did not succeed at once. Retries that later succeed count here too.",
				queries: []query{{rate("society_model_requests_total", byModel+`,outcome!="ok"`, "model") + "\n/\n" +
					rate("society_model_requests_total", byModel, "model"), "{{model}}"}}},
			{kind: timeSeries, title: "Requests in flight", unit: "short", w: 8, h: 8,
				desc:    "Requests sent and not yet answered; it stays at the model's concurrency when the endpoint is the bottleneck.",
				queries: []query{{"sum by (model) " + onRunInstances(fmt.Sprintf("society_model_requests_in_flight{%s,%s}", byInstance, byModel)), "{{model}}"}}},
			{kind: timeSeries, title: "Request latency", unit: "s", w: 8, h: 8,
				desc: "Median, 90th and 99th percentile time of a request attempt.",
				queries: []query{
					{quantile("0.5", "society_model_request_duration_seconds"), "{{model}} p50"},
					{quantile("0.9", "society_model_request_duration_seconds"), "{{model}} p90"},
					{quantile("0.99", "society_model_request_duration_seconds"), "{{model}} p99"},
				}},
			{kind: timeSeries, title: "Queue wait", unit: "s", w: 8, h: 8,
				desc: "Time requests wait for a free concurrency slot: high when the run asks more than the model's concurrency allows.",
				queries: []query{
					{quantile("0.5", "society_model_queue_wait_seconds"), "{{model}} p50"},
					{quantile("0.99", "society_model_queue_wait_seconds"), "{{model}} p99"},
				}},
			{kind: timeSeries, title: "Tokens", unit: "short", w: 8, h: 8,
				desc:    "Prompt (in) and completion (out) tokens per second, as the endpoints report them.",
				queries: []query{{rate("society_model_tokens_total", byModel, "model, kind"), "{{model}} {{kind}}"}}},
		}},
		{"Cache", []panelSpec{
			{kind: timeSeries, title: "Cache hit ratio", unit: "percentunit", w: 8, h: 7, min: ptr(0.0), max: ptr(1.0),
				desc: "Share of model calls not made because the answer cache held their replies (calls saved / (calls saved + calls made on a miss)). A re-run of a finished scenario reaches 100%.",
				queries: []query{{rate("society_cache_lookups_total", byModel+`,outcome="hit"`, "model") + "\n/\n" +
					rate("society_cache_lookups_total", byModel, "model"), "{{model}}"}}},
			{kind: statPanel, title: "Model calls saved", unit: "short", w: 8, h: 7,
				desc:    "Model calls not made because the answer cache held their replies, since each process started, summed over the processes of the selected runs. One call serves many answers (a distribution, a request with n samples): answers reused are counted in results.json, not here.",
				queries: []query{{"sum by (model) " + onRunInstances(fmt.Sprintf(`society_cache_lookups_total{%s,%s,outcome="hit"}`, byInstance, byModel)), "{{model}}"}}},
			{kind: timeSeries, title: "Distribution coverage", unit: "percentunit", w: 8, h: 7, min: ptr(0.0), max: ptr(1.0),
				desc: "Mean probability mass the answer options cover in distribution mode. Low coverage means the model often starts its reply with something else; such questions are sampled instead.",
				queries: []query{{rate("society_distribution_coverage_ratio_sum", byModel, "model") + "\n/\n" +
					rate("society_distribution_coverage_ratio_count", byModel, "model"), "{{model}}"}}},
		}},
		{"Human-likeness", []panelSpec{
			{kind: timeSeries, title: "Values similarity so far", unit: "none", w: 12, h: 9, min: ptr(0.0), max: ptr(1.0),
				desc: "How close the population's value structure is to people's (1 = the same MDS map after Procrustes). During the run it comes from a sample of the agents who answered every item; the last point is the whole population's, as in results.json.",
				queries: []query{{fmt.Sprintf("max by (run, model, strategy, reference) (society_values_similarity{%s,%s,%s})", forRun, byModel, byStrategy),
					"{{run}} {{model}} {{strategy}} vs {{reference}}"}}},
			{kind: timeSeries, title: "Behaviour similarity", unit: "none", w: 12, h: 9, min: ptr(-1.0), max: ptr(1.0),
				desc: "Correlation between the population's value × behaviour matrix and the reference's, per behaviour instrument.",
				queries: []query{{fmt.Sprintf("max by (run, model, strategy, instrument, reference) (society_behavior_similarity{%s,%s,%s})", forRun, byModel, byStrategy),
					"{{run}} {{model}} {{strategy}} {{instrument}} vs {{reference}}"}}},
		}},
		{"Games", []panelSpec{
			{kind: timeSeries, title: "Cooperation by value", unit: "percentunit", w: 18, h: 9, min: ptr(0.0), max: ptr(1.0),
				desc:    "Paired Charity Game: share of players of each dominant value who contributed in the latest round.",
				queries: []query{{fmt.Sprintf("max by (run, game, value) (society_game_cooperation_ratio{%s})", forRun), "{{run}} {{game}} {{value}}"}}},
			{kind: statPanel, title: "Round", unit: "none", w: 6, h: 9,
				desc:    "Latest round played of each game.",
				queries: []query{{fmt.Sprintf("max by (run, game) (society_game_round{%s})", forRun), "{{run}} {{game}}"}}},
		}},
		{"Transport", []panelSpec{
			{kind: timeSeries, title: "Answers waiting in NATS", unit: "short", w: 12, h: 7,
				desc:    "Answer batches in a run's JetStream stream not yet delivered to the analysis. A growing backlog means the analysis is the bottleneck.",
				queries: []query{{fmt.Sprintf("max by (run) (society_nats_pending_messages{%s})", forRun), "{{run}}"}}},
			{kind: timeSeries, title: "Redeliveries and bad messages", unit: "cps", w: 12, h: 7,
				desc: "Answer batches delivered more than once (ignored by the analysis) and messages that could not be decoded (skipped), per second, over the processes of the selected runs.",
				queries: []query{
					{"sum " + onRunInstances(fmt.Sprintf("rate(society_nats_redeliveries_total{%s}[%s])", byInstance, rateWindow)), "redeliveries"},
					{"sum " + onRunInstances(fmt.Sprintf("rate(society_bad_messages_total{%s}[%s])", byInstance, rateWindow)), "bad messages"},
				}},
		}},
	}
}

// Dashboard returns the Grafana dashboard for a society run as indented
// JSON, ready for file provisioning.
func Dashboard() ([]byte, error) {
	ds := common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${datasource}")}
	// The classic (v1) dashboard model: it is what Grafana's file
	// provisioning reads in every current release, whereas the v2 schema
	// the SDK now prefers needs Grafana 12 with experimental features on.
	//lint:ignore SA1019 see above
	b := dashboard.NewDashboardBuilder("society: run").
		Uid(DashboardUID).
		Description("Society runs as they happen: progress, answer rates, model endpoints, cache, values similarity so far, games and transport; one series per run (society_run_info names its scenario and seed).").
		Tags([]string{"society"}).
		Refresh("5s").
		Time("now-30m", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(labelVariable("instance", "Instance", "society_build_info", ds)).
		WithVariable(labelVariable("run", "Run", "society_run_info{"+byInstance+"}", ds)).
		WithVariable(labelVariable("model", "Model", "society_answers_total{"+forRun+"}", ds)).
		WithVariable(labelVariable("strategy", "Strategy", "society_population_agents{"+forRun+"}", ds))
	// Explicit ids: Grafana keys panel state and links on them.
	id := uint32(0)
	for _, r := range rows() {
		id++
		b = b.WithRow(dashboard.NewRowBuilder(r.title).Id(id))
		for _, p := range r.panels {
			id++
			b = b.WithPanel(p.build(ds, id))
		}
	}
	d, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	// Without HTML escaping, so that "a > 0" in a query reads as written.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	return buf.Bytes(), nil
}

func labelVariable(name, label, metric string, ds common.DataSourceRef) *dashboard.QueryVariableBuilder {
	q := fmt.Sprintf("label_values(%s, %s)", metric, name)
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Query(dashboard.StringOrMap{String: &q}).
		Definition(q).
		Datasource(ds).
		Multi(true).
		IncludeAll(true).
		AllValue(".*").
		Current(dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: ptr("All")},
			Value: dashboard.StringOrArrayOfString{String: ptr("$__all")}}).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

func (p panelSpec) targets() []cog.Builder[variants.Dataquery] {
	var ts []cog.Builder[variants.Dataquery]
	for i, q := range p.queries {
		ts = append(ts, prometheus.NewDataqueryBuilder().
			RefId(string(rune('A'+i))).
			Expr(strings.TrimSpace(q.expr)).
			LegendFormat(q.legend).
			Range())
	}
	return ts
}

func (p panelSpec) build(ds common.DataSourceRef, id uint32) cog.Builder[dashboard.Panel] {
	switch p.kind {
	case statPanel:
		s := stat.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Datasource(ds).Unit(p.unit).
			Span(p.w).Height(p.h).Targets(p.targets()).
			GraphMode(common.BigValueGraphModeArea).
			TextMode(common.BigValueTextModeAuto).
			Orientation(common.VizOrientationAuto).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
		if p.showName {
			s = s.TextMode(common.BigValueTextModeName).GraphMode(common.BigValueGraphModeNone)
		}
		if p.min != nil {
			s = s.Min(*p.min)
		}
		if p.max != nil {
			s = s.Max(*p.max)
		}
		return s
	case barGauge:
		g := bargauge.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Datasource(ds).Unit(p.unit).
			Span(p.w).Height(p.h).Targets(p.targets()).
			Orientation(common.VizOrientationHorizontal).
			DisplayMode(common.BarGaugeDisplayModeGradient).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
		return g
	default:
		t := timeseries.NewPanelBuilder().Id(id).Title(p.title).Description(p.desc).Datasource(ds).Unit(p.unit).
			Span(p.w).Height(p.h).Targets(p.targets()).
			FillOpacity(10).
			ShowPoints(common.VisibilityModeNever).
			Legend(common.NewVizLegendOptionsBuilder().
				DisplayMode(common.LegendDisplayModeList).
				Placement(common.LegendPlacementBottom).
				ShowLegend(true))
		if p.min != nil {
			t = t.Min(*p.min)
		}
		if p.max != nil {
			t = t.Max(*p.max)
		}
		if p.stack {
			t = t.Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
		}
		return t
	}
}
