package llmbench

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden texts under testdata")

// goldenModelPath exercises every branch of the model path's text: a
// steady rate not measured, a count mismatch, a concurrency not reached.
func goldenModelPath() *ModelPath {
	run := func(client string, calls, srv, peak int64) Run {
		return Run{Client: client, Calls: calls, ServerRequests: srv, Seconds: 1.2345, MinSeconds: 1.1, CallsPerSecond: 2048.4,
			Efficiency: 0.8, SteadyCallsPerSecond: 2100, SteadyEfficiency: 0.82, PeakInFlight: peak, PeakInService: 256, ClientCPUMicros: 41.6, ServerCPUMicros: 90.2, Retries: 3}
	}
	s := run("society", 40000, 40000, 512)
	s.SteadyEfficiency = 0
	return &ModelPath{Slots: 256, LatencySeconds: 0.1, IdealCallsPerSecond: 2560, Concurrency: 512, Agents: 1000, Items: 40, Efficiency: 0.8, WarmUpCalls: 10000,
		Sample:       Comparison{Mode: "sample", Society: s, Bare: run("bare", 40000, 39999, 512), RateRatio: 0.98, SecondsRatio: 1.02, CPURatio: 1.5},
		Distribution: Comparison{Mode: "distribution", Society: run("society", 440, 440, 100), Bare: run("bare", 440, 440, 440), RateRatio: 1, SecondsRatio: 1, CPURatio: 2.25}}
}

// goldenCalls has counts in the hundreds of billions and a check that
// does not match.
func goldenCalls() *Calls {
	return &Calls{
		Design: Design{Prompts: 11, Instruments: map[string]int{"pvq40": 40, "bfi2": 60, "prosocial": 16, "donation": 1, "charity": 10, "charity_decision": 10, "ebq": 20, "persona": 135000},
			PersonaK: 1000, Behaviours: 135, Items: 135157, Repetitions: 50},
		Counts: []Count{{Label: "study: 11 prompts × N=50", Agents: 550, PerAnswer: 74336350, NSampling: 1486727, Distribution: 1486727},
			{Label: "1000000 agents, H-NP", Agents: 1000000, PerAnswer: 135157000000, NSampling: 2703140000, Distribution: 7}},
		Check: []Check{{Mode: "per-answer", Agents: 44, Items: 200, N: 3, Predicted: 8800, ClientCalls: 8800, ServerRequests: 8800, Match: true},
			{Mode: "n-sampling", Agents: 44, Items: 200, N: 3, Predicted: 3200, ClientCalls: 3201, ServerRequests: 3200}},
	}
}

// TestWriteTextGolden checks the texts against files that `society bench`
// wrote before they moved here: the format is the command's, byte for
// byte.
func TestWriteTextGolden(t *testing.T) {
	for _, c := range []struct {
		name  string
		write func(*bytes.Buffer)
	}{
		{"modelpath.txt", func(b *bytes.Buffer) { goldenModelPath().WriteText(b) }},
		{"calls.txt", func(b *bytes.Buffer) { goldenCalls().WriteText(b) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got bytes.Buffer
			c.write(&got)
			path := filepath.Join("testdata", c.name)
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("got\n%s\nwant\n%s", got.Bytes(), want)
			}
		})
	}
}

func TestGroup(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", 135157000000: "135,157,000,000"} {
		if got := group(n); got != want {
			t.Errorf("group(%d): got %q, want %q", n, got, want)
		}
	}
}
