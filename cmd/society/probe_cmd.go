package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/backend"
	"github.com/society-sim/society/scenarios"
)

func cmdProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe", "probe SCENARIO | probe MODEL --base-url URL\n\nAsks each OpenAI-compatible model of SCENARIO (or MODEL at URL) a handful of requests\nand prints what the endpoint supports and which settings the scenario should use.\n", stderr)
	baseURL := fs.String("base-url", "", "probe MODEL at this OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1)")
	keyEnv := fs.String("api-key-env", "", "environment variable holding the API key (with --base-url)")
	timeout := fs.Duration("timeout", 60*time.Second, "time each request may take (with --base-url)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: probe takes one scenario, or one model name with --base-url", errUsage)
	}
	var (
		targets []backend.ProbeTarget
		sc      *scenarios.Scenario
	)
	if *baseURL != "" {
		targets = []backend.ProbeTarget{{Client: llm.ClientConfig{Name: pos[0], BaseURL: *baseURL, Model: pos[0], APIKeyEnv: *keyEnv, Timeout: *timeout}}}
	} else {
		if sc, err = scenarios.Open(pos[0]); err != nil {
			return fmt.Errorf("%w (to probe a model by name: 'society probe MODEL --base-url URL')", err)
		}
		var synthetic []string
		targets, synthetic = backend.ProbeTargets(sc)
		for _, name := range synthetic {
			fmt.Fprintf(stdout, "model %s: synthetic respondents, nothing to probe\n", name)
		}
	}
	q, err := backend.ProbeQuestion(sc)
	if err != nil {
		return err
	}
	var failed []string
	for _, t := range targets {
		cfg := t.Client
		rep, err := llm.Probe(ctx, cfg, q)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A server that answered with an error is reachable: it
			// refused (a quota, a key, a model), which is another fix.
			if re, ok := errors.AsType[*llm.RequestError](err); ok && re.Status != 0 {
				fmt.Fprintf(stdout, "model %s at %s\n  reachable:          yes, but it refused: %v\n", cfg.Name, cfg.BaseURL, err)
			} else {
				fmt.Fprintf(stdout, "model %s at %s\n  reachable:          no: %v\n", cfg.Name, cfg.BaseURL, err)
			}
			failed = append(failed, fmt.Sprintf("model %s: %v", cfg.Name, err))
			continue
		}
		if t.Mode != "" && t.Mode != rep.Mode {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the scenario asks for mode = %q", t.Mode))
		}
		rep.WriteText(stdout, cfg.Name)
	}
	if len(failed) > 0 {
		return fmt.Errorf("probe: %s", strings.Join(failed, "; "))
	}
	return nil
}
