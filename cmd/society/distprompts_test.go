package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/society-sim/society/results"
)

// TestDistributedPromptsMatchSingleProcess: a run over NATS, whose agents
// ask their models in the agent hosts, writes the prompts.csv of a
// single-process run of the same scenario and seed, byte for byte, game
// rounds included (the memories, the rate shown and the probable choice
// in their contexts), whether the analysis service or the orchestrator
// (--out) writes the results; with a test-primed model too, whose
// filled-in tests the hosts report.
func TestDistributedPromptsMatchSingleProcess(t *testing.T) {
	t.Run("game", func(t *testing.T) { distPromptsMatch(t, "") })
	t.Run("test-primed", func(t *testing.T) {
		distPromptsMatch(t, "\n[[models]]\nname = \"synthetic\"\nbackend = \"synthetic\"\n\n"+
			"[[models]]\nname = \"primed\"\nbackend = \"synthetic\"\npriming = \"test\"\nstyle = \"name\"\n")
	})
}

func distPromptsMatch(t *testing.T, models string) {
	c := newCluster(t)
	scen := gameScenario(t, 201, 3, "memory = 2\nshow_rate = true"+models, "pvq40")
	single := c.role("single", "run", scen, "--out", "single", "--quiet")
	if err := single.wait(t); err != nil {
		t.Fatalf("single-process run: %v\n%s", err, single.stderr.String())
	}
	want := readFile(t, filepath.Join(c.dir, "single", "prompts.csv"))
	rows, err := results.ReadPrompts(filepath.Join(c.dir, "single"))
	if err != nil {
		t.Fatal(err)
	}
	rounds := map[int]int{}
	for _, r := range rows {
		rounds[r.Round]++
	}
	if rounds[0] == 0 || rounds[2] <= rounds[1] {
		t.Fatalf("got prompts by round %v: want questionnaire rows and more distinct prompts in round 2 than in round 1", rounds)
	}
	if primed := bytes.Count(want, []byte("\nprimed,")); models != "" && primed == 0 {
		t.Fatalf("the single-process run wrote no row of the test-primed model:\n%.2000s", want)
	}

	c.analysis("analysis")
	c.host("host-1")
	c.host("host-2")
	const run = "charity-small-3"
	orch := c.orchestrate(scen)
	if err := orch.wait(t); err != nil {
		t.Fatalf("orchestrator: %v\n%s", err, orch.stderr.String())
	}
	if got := readFile(t, filepath.Join(c.dir, "dist", run, "prompts.csv")); !bytes.Equal(got, want) {
		t.Errorf("prompts.csv written by the analysis service differs from the single-process run's:\n got %.2000s\nwant %.2000s", got, want)
	}
	own := c.role("resume", "run", "--resume", run, "--nats", c.url(), "--out", "own", "--quiet")
	if err := own.wait(t); err != nil {
		t.Fatalf("run --resume: %v\n%s", err, own.stderr.String())
	}
	if got := readFile(t, filepath.Join(c.dir, "own", "prompts.csv")); !bytes.Equal(got, want) {
		t.Errorf("prompts.csv written by the orchestrator differs from the single-process run's:\n got %.2000s\nwant %.2000s", got, want)
	}
}
