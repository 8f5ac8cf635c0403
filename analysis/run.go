package analysis

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"time"
)

// Run is the run block of results.json: which program ran the study, on
// which host, when, with which settings per model, what each model's
// server said it served, and what the run cost. Keys are stable.
type Run struct {
	ID string `json:"id"`
	// Version is the program's version: a release's, set at build time, or
	// the module version; "devel" for a build of a working tree.
	Version string `json:"version"`
	// Revision is the VCS revision the program was built from ("unknown"
	// when the build recorded none: go run, or a tree outside git);
	// Modified marks a build of a tree with uncommitted changes, so that
	// the revision alone does not reproduce it. It is absent (nil) when
	// the revision is unknown: whether the tree had changes is then
	// unknown too, and false would claim a clean build.
	Revision  string `json:"revision"`
	Modified  *bool  `json:"modified,omitempty"`
	BuildTime string `json:"build_time,omitempty"` // RFC 3339: a release's build time (set at build time; none otherwise)
	// CommitTime is the revision's commit time (RFC 3339), as go build
	// recorded it.
	CommitTime string `json:"commit_time,omitempty"`
	GoVersion  string `json:"go_version,omitempty"`
	// Host is the host that ran the study, or, for a run over NATS, the
	// one that wrote its results. AgentHosts is, for a run over NATS, how
	// many agent hosts served its tasks (each reported its model traffic
	// for the run, calls or none); it is absent for a run in one process.
	Host       string `json:"host"`
	AgentHosts int    `json:"agent_hosts,omitempty"`
	// Start and End are RFC 3339 times in UTC; WallSeconds is the time
	// between them, from the run's start to its results written.
	Start       string  `json:"start"`
	End         string  `json:"end"`
	WallSeconds float64 `json:"wall_seconds"`
	// Synthetic is true when every model's answers came from synthetic
	// respondents (the synthetic backend, or an endpoint served by
	// society model-server): the run measured no language model.
	Synthetic bool       `json:"synthetic"`
	Models    []RunModel `json:"models"`
}

// RunModel is one model's settings as the run resolved them (defaults
// filled in), what its server said about itself, and its traffic.
type RunModel struct {
	Name      string `json:"name"`
	Backend   string `json:"backend"`
	Synthetic bool   `json:"synthetic"`
	// BaseURL has its credentials masked; the API key is never recorded.
	BaseURL  string `json:"base_url,omitempty"`
	Model    string `json:"model,omitempty"`
	Mode     string `json:"mode"`
	Endpoint string `json:"endpoint,omitempty"`
	// Temperature and Seed are null when left to the server; TopP is
	// absent when left to the server.
	Temperature     *float64 `json:"temperature"`
	TopP            float64  `json:"top_p,omitempty"`
	Samples         int      `json:"samples,omitempty"`
	MaxTokens       int      `json:"max_tokens,omitempty"`
	Seed            *uint64  `json:"seed"`
	ReasoningEffort string   `json:"reasoning_effort,omitempty"`
	// Concurrency is the most requests one process keeps in flight to
	// the endpoint; Hosts is how many processes served the run's tasks
	// with the model: 1 for a single process, over NATS the agent hosts
	// that did, whether or not they called it (their caches may have
	// answered every prompt). At most Concurrency × Hosts requests were
	// in flight at once.
	Concurrency    int     `json:"concurrency,omitempty"`
	Hosts          int     `json:"hosts,omitempty"`
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"` // per attempt
	MaxRetries     int     `json:"max_retries,omitempty"`
	// ServedModel and SystemFingerprint are the first the server reported
	// in its replies, LastServedModel and LastSystemFingerprint the last;
	// FingerprintChanged marks a run whose replies reported more than one
	// fingerprint: its answers may come from different model builds.
	ServedModel           string `json:"served_model,omitempty"`
	LastServedModel       string `json:"last_served_model,omitempty"`
	SystemFingerprint     string `json:"system_fingerprint,omitempty"`
	LastSystemFingerprint string `json:"last_system_fingerprint,omitempty"`
	FingerprintChanged    bool   `json:"fingerprint_changed"`
	// LLM is the model's traffic (as in model_runs); null when the run
	// could not count it.
	LLM *ModelLLM `json:"llm"`
}

// RunTimeLayout is the layout of the run block's times: RFC 3339 in UTC,
// to the millisecond.
const RunTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// RunTime formats t for the run block.
func RunTime(t time.Time) string { return t.UTC().Format(RunTimeLayout) }

// Finish completes the run block at end: the end time and wall time
// (unless the block has an end already), the
// models (from Models when the block has none), and for each model its
// synthetic label, what its server said it served
// (from Models, unless the block has it already) and its traffic (from
// ModelRuns). It sets r.Run to the completed block.
func (r *Results) Finish(run *Run, end time.Time) {
	if run == nil {
		return
	}
	out := *run
	out.Models = make([]RunModel, len(run.Models))
	copy(out.Models, run.Models)
	if len(out.Models) == 0 {
		// A run that did not hold the models' clients (its agents ran on
		// other hosts) knows their descriptions only.
		for _, m := range r.Models {
			out.Models = append(out.Models, RunModel{Name: m.Name, Backend: m.Backend, Model: m.Model, Mode: m.Mode})
		}
	}
	// A block already finished (the results of a run written again from
	// what its record kept) keeps the times of the run that answered.
	if start, err := time.Parse(time.RFC3339, run.Start); run.End == "" {
		out.End = RunTime(end)
		if err == nil {
			out.WallSeconds = math.Round(end.Sub(start).Seconds()*1000) / 1000
		}
	}
	out.Synthetic = len(out.Models) > 0
	for i := range out.Models {
		m := &out.Models[i]
		for _, info := range r.Models {
			if info.Name != m.Name {
				continue
			}
			m.Synthetic = m.Synthetic || info.Synthetic
			if m.ServedModel == "" && m.SystemFingerprint == "" {
				m.ServedModel, m.SystemFingerprint = info.ServedModel, info.SystemFingerprint
			}
		}
		for _, mr := range r.ModelRuns {
			if mr.Model == m.Name && mr.LLM != nil {
				l := *mr.LLM
				m.LLM = &l
			}
		}
		out.Synthetic = out.Synthetic && m.Synthetic
	}
	r.Run = &out
}

// RunLines say the run block in a few lines, for the report and the
// terminal summary.
func RunLines(run *Run) []string {
	if run == nil {
		return nil
	}
	build := run.Version + ", revision " + run.Revision
	if run.Modified != nil && *run.Modified {
		build += " (modified)"
	}
	where := "on " + run.Host
	if run.AgentHosts > 0 {
		where = fmt.Sprintf("over NATS with %d agent host%s (results written on %s)", run.AgentHosts, plural(run.AgentHosts), run.Host)
	}
	out := []string{fmt.Sprintf("Run %s %s, %s to %s (%.1f s), society %s.", run.ID, where, run.Start, run.End, run.WallSeconds, build)}
	if run.Synthetic {
		out = append(out, "SYNTHETIC: every answer of this run came from synthetic respondents, not a language model.")
	}
	for _, m := range run.Models {
		b := &strings.Builder{}
		fmt.Fprintf(b, "%s: %s", m.Name, BackendLabel(m.Backend, m.Synthetic))
		if m.BaseURL != "" {
			fmt.Fprintf(b, " at %s", m.BaseURL)
		}
		if m.Model != "" {
			fmt.Fprintf(b, ", model %s", m.Model)
		}
		fmt.Fprintf(b, ", %s mode", m.Mode)
		if m.Temperature != nil {
			fmt.Fprintf(b, ", temperature %g", *m.Temperature)
		}
		if m.TopP != 0 {
			fmt.Fprintf(b, ", top_p %g", m.TopP)
		}
		if m.Samples > 0 {
			fmt.Fprintf(b, ", %d samples per request", m.Samples)
		}
		if m.MaxTokens > 0 {
			fmt.Fprintf(b, ", max_tokens %d", m.MaxTokens)
		}
		if m.Seed != nil {
			fmt.Fprintf(b, ", seed %d", *m.Seed)
		}
		if m.ReasoningEffort != "" {
			fmt.Fprintf(b, ", reasoning_effort %s", m.ReasoningEffort)
		}
		if m.ServedModel != "" || m.SystemFingerprint != "" {
			fmt.Fprintf(b, "; served %s (fingerprint %s)", orNone(m.ServedModel), orNone(m.SystemFingerprint))
		}
		if m.FingerprintChanged {
			fmt.Fprintf(b, "; WARNING: the system_fingerprint changed during the run, to %s (model %s): answers may come from different model builds",
				orNone(m.LastSystemFingerprint), orNone(m.LastServedModel))
		}
		if l := m.LLM; l != nil {
			fmt.Fprintf(b, "; %d calls, %d saved by the cache, %d answers reused, %d retries, %d prompt + %d completion tokens",
				l.Calls, l.CacheHits, l.AnswersReused, l.Retries, l.PromptTokens, l.CompletionTokens)
		}
		out = append(out, b.String())
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func orNone(s string) string {
	if s == "" {
		return "none reported"
	}
	return s
}

// UnknownRevision is the revision of a build that recorded none.
const UnknownRevision = "unknown"

// Build identifies the running program, as the run block records it.
type Build struct {
	Version  string // a release's version, the module's, or "devel"
	Revision string // VCS revision, "unknown" when the build recorded none
	Modified bool   // built from a tree with uncommitted changes
	// Time is a release's build time (set with -ldflags; the toolchain
	// records none); CommitTime the revision's commit time.
	Time       string
	CommitTime string
	GoVersion  string
}

// ProgramBuild reads the running program's build information
// (runtime/debug.ReadBuildInfo): go build in a git tree records the
// revision, whether the tree had uncommitted changes and the commit time;
// go run records none unless given -buildvcs=true. version, revision and
// buildTime, when not empty, are a release's values set at build time
// (-ldflags -X) and win over what the toolchain recorded.
func ProgramBuild(version, revision, buildTime string) Build {
	v := Build{Version: "devel", Revision: UnknownRevision}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.GoVersion = bi.GoVersion
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			v.Version = mv
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			case "vcs.time":
				v.CommitTime = s.Value
			}
		}
	}
	if version != "" {
		v.Version = version
	}
	if revision != "" {
		v.Revision = revision
	}
	if buildTime != "" {
		v.Time = buildTime
	}
	return v
}

// StartRun starts the provenance block of the run id that starts at start
// in this process, built as b: the build, the host and the start time. Its
// models and end are filled as the run ends (Results.Finish).
func StartRun(id string, start time.Time, b Build) *Run {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	r := &Run{ID: id, Version: b.Version, Revision: b.Revision, BuildTime: b.Time, CommitTime: b.CommitTime,
		GoVersion: b.GoVersion, Host: host, Start: RunTime(start)}
	if b.Revision != UnknownRevision {
		r.Modified = &b.Modified
	}
	return r
}

// StartRecordedRun starts the run block of a run over NATS, written by the
// process that computes its results: the run started at start (its
// record's, in RunTimeLayout), or, for a record without one, now. The
// writer sets its models: their settings as resolved from the run's
// scenario, their traffic and what their servers served from the hosts'
// reports.
func StartRecordedRun(id, start string, b Build) *Run {
	r := StartRun(id, time.Now(), b)
	if start != "" {
		r.Start = start
	}
	return r
}
