package analysis

import (
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestResultsFinishRun(t *testing.T) {
	start := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	temp := 0.7
	r := Results{
		Models: []ModelInfo{
			{Name: "llama", Backend: "openai", Mode: "sample", Synthetic: true, ServedModel: "society-synthetic", SystemFingerprint: "society-synthetic-1"},
			{Name: "gpt", Backend: "openai", Mode: "distribution", ServedModel: "gpt-4o", SystemFingerprint: "fp_1"},
		},
		ModelRuns: []ModelRun{{Model: "llama", LLM: &ModelLLM{Calls: 10, CacheHits: 4, AnswersReused: 30}}},
	}
	run := &Run{ID: "r1", Version: "devel", Revision: "abc", Host: "h", Start: RunTime(start),
		Models: []RunModel{{Name: "llama", Backend: "openai", Mode: "sample", Temperature: &temp}, {Name: "gpt", Backend: "openai", Mode: "distribution"}}}
	r.Finish(run, start.Add(90500*time.Millisecond))
	got := r.Run
	if got.End != "2026-11-30T09:01:30.500Z" || got.WallSeconds != 90.5 {
		t.Errorf("end: got %s, %v s; want 2026-11-30T09:01:30.500Z, 90.5 s", got.End, got.WallSeconds)
	}
	if got.Synthetic {
		t.Error("run synthetic: got true, want false (gpt is a language model)")
	}
	l, g := got.Models[0], got.Models[1]
	if !l.Synthetic || l.ServedModel != "society-synthetic" || l.LLM == nil || l.LLM.CacheHits != 4 || l.LLM.AnswersReused != 30 {
		t.Errorf("llama: got %+v, want synthetic, served society-synthetic, 4 cache hits, 30 answers reused", l)
	}
	if g.Synthetic || g.SystemFingerprint != "fp_1" || g.LLM != nil {
		t.Errorf("gpt: got %+v, want not synthetic, fingerprint fp_1, no traffic", g)
	}
	if run.End != "" || run.Models[0].LLM != nil {
		t.Error("Finish changed the block it was given")
	}
	lines := strings.Join(RunLines(got), "\n")
	for _, want := range []string{"Run r1 on h", "90.5 s", "llama: openai serving synthetic respondents (society model-server)", "temperature 0.7", "4 saved by the cache, 30 answers reused"} {
		if !strings.Contains(lines, want) {
			t.Errorf("run lines: got %q, want %q in them", lines, want)
		}
	}
	r.Models = r.Models[:1]
	r.Finish(&Run{Models: run.Models[:1], Start: run.Start}, start)
	if !r.Run.Synthetic || !strings.Contains(strings.Join(RunLines(r.Run), "\n"), "SYNTHETIC") {
		t.Errorf("a run of synthetic models only: got %+v, want it said synthetic", r.Run)
	}
	// A finished block, finished again later (results written again),
	// keeps the times of the run that answered.
	done := *got
	r.Finish(&done, start.Add(time.Hour))
	if r.Run.End != got.End || r.Run.WallSeconds != got.WallSeconds {
		t.Errorf("a finished block finished again: got end %s, %v s; want %s, %v s", r.Run.End, r.Run.WallSeconds, got.End, got.WallSeconds)
	}
	// A run over NATS says so, with its agent hosts, and where its
	// results were written.
	for n, want := range map[int]string{1: "Run r1 over NATS with 1 agent host (results written on h), ", 2: "Run r1 over NATS with 2 agent hosts (results written on h), "} {
		dist := *got
		dist.AgentHosts = n
		if line := RunLines(&dist)[0]; !strings.HasPrefix(line, want) {
			t.Errorf("a run over NATS with %d agent hosts: got %q, want it to start %q", n, line, want)
		}
	}
}

// results.json written before the run block existed still reads, without one.
func TestResultsWithoutRun(t *testing.T) {
	var r Results
	if err := json.Unmarshal([]byte(`{"scenario":"quickstart","seed":1,"llm":{"calls":3,"cache_hits":1,"retries":0}}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Run != nil || r.LLM.Calls != 3 || r.LLM.AnswersReused != 0 {
		t.Errorf("got run %+v, llm %+v; want no run block and 3 calls", r.Run, r.LLM)
	}
}

// A release's -ldflags values win over what the toolchain recorded; the
// Go version is always the running binary's.
func TestProgramBuild(t *testing.T) {
	got := ProgramBuild("v9.8.7", "release-rev", "2026-11-30T10:00:00Z")
	want := Build{Version: "v9.8.7", Revision: "release-rev", Time: "2026-11-30T10:00:00Z", GoVersion: runtime.Version(), Modified: got.Modified, CommitTime: got.CommitTime}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if b := ProgramBuild("", "", ""); b.Version == "" || b.Revision == "" || b.GoVersion != runtime.Version() {
		t.Errorf("got %+v, want a version, a revision (or \"unknown\") and Go version %s", b, runtime.Version())
	}
}

// A build whose revision is unknown has no "modified" in its run block:
// whether its tree had changes is unknown too; a known revision says
// whether it was modified, false included.
func TestRunModifiedUnknown(t *testing.T) {
	for _, tt := range []struct {
		rev  string
		want string // "" for no modified key
	}{
		{UnknownRevision, ""},
		{"abc", `"modified":false`},
	} {
		b, err := json.Marshal(StartRun("x-1", time.Now(), Build{Version: "devel", Revision: tt.rev}))
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		if tt.want == "" && strings.Contains(got, "modified") || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("revision %s: got %s, want modified %q", tt.rev, got, tt.want)
		}
	}
}

// A run's block names its build, host and start; a recorded run keeps the
// start its record gives, or starts now without one.
func TestStartRun(t *testing.T) {
	b := Build{Version: "v1", Revision: "abc", Modified: true, Time: "t", CommitTime: "c", GoVersion: "go1"}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := StartRun("x-1", start, b)
	host, _ := os.Hostname()
	if r.ID != "x-1" || r.Version != "v1" || r.Revision != "abc" || r.Modified == nil || !*r.Modified || r.BuildTime != "t" || r.CommitTime != "c" || r.GoVersion != "go1" ||
		r.Start != RunTime(start) || r.Host == "" || (host != "" && r.Host != host) {
		t.Errorf("StartRun: got %+v", r)
	}
	if got := StartRecordedRun("x-1", "2026-01-02T03:04:05.000Z", b).Start; got != "2026-01-02T03:04:05.000Z" {
		t.Errorf("recorded start: got %q", got)
	}
	before := RunTime(time.Now())
	if got := StartRecordedRun("x-1", "", b).Start; got < before {
		t.Errorf("no recorded start: got %q, want now (at least %q)", got, before)
	}
}
