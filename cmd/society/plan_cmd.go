package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/society-sim/society/llm/backend"
	"github.com/society-sim/society/scenarios"
)

const planSynopsis = `plan SCENARIO [--latency D] [--json]

SCENARIO is a TOML file or a built-in name. Prints, per model and query
mode, the requests the run will make, their prompt and completion tokens,
the answers expected, the time at the model's concurrency and latency, and
the cost when the model gives price_per_mtok_in and price_per_mtok_out.

Each endpoint is first asked for its model list (no tokens); one that
cannot be reached stops the plan within seconds with its URL and the cause.
The requests are counted by rehearsing a first run (a fresh reply cache) on the synthetic
respondents in this process: the same prompts, batching, calibration and game rounds. A run
with --no-cache asks a prompt again in each phase that needs it; its own block counts that. Prompt tokens are
estimated as characters/4 (no tokenizer is bundled); for an endpoint that
is 'society model-server' they are words, as that server counts them.`

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plan", planSynopsis, stderr)
	latency := fs.Duration("latency", 0, "time one request takes at the endpoint (default: the measured model-list round trip, a lower bound)")
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: plan takes one scenario, got %d", errUsage, len(pos))
	}
	if *latency < 0 {
		return fmt.Errorf("%w: --latency: must not be negative, got %v", errUsage, *latency)
	}
	sc, err := scenarios.Open(pos[0])
	if err != nil {
		return err
	}
	if err := scenarios.Unrelated(sc); err != nil {
		return err
	}
	p, err := backend.Estimate(ctx, sc, *latency)
	if err != nil {
		return err
	}
	if *asJSON {
		return p.WriteJSON(stdout)
	}
	p.WriteText(stdout, false)
	return nil
}

// planBlock writes atop a run against model endpoints its cost per model,
// as 'society plan' does, with the requests the reply cache c answers
// apart; c nil is a run over NATS (Plan.OverNATS: stored names it when
// done, its answers all stored). Synthetic respondents alone show none.
func planBlock(ctx context.Context, sc *scenarios.Scenario, c *backend.ReplyCache, stored string, w io.Writer) error {
	if !slices.ContainsFunc(sc.Models, func(m scenarios.Model) bool { return m.Backend == scenarios.OpenAI }) {
		return nil
	}
	p, err := backend.EstimateCached(ctx, sc, 0, c)
	if err != nil {
		return err
	}
	if c == nil {
		p.OverNATS(stored)
	}
	p.WriteText(w, true)
	fmt.Fprintln(w)
	return nil
}
