package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/values"
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
		cfgs  []llm.ClientConfig
		modes []string // the scenario's mode of each model; "" without a scenario
		in    *questionnaires.Instrument
	)
	if *baseURL != "" {
		cfgs = []llm.ClientConfig{{Name: pos[0], BaseURL: *baseURL, Model: pos[0], APIKeyEnv: *keyEnv, Timeout: *timeout}}
		modes = []string{""}
	} else {
		sc, err := scenarios.Open(pos[0])
		if err != nil {
			return err
		}
		for _, m := range sc.Models {
			if m.Backend != scenarios.OpenAI {
				fmt.Fprintf(stdout, "model %s: synthetic respondents, nothing to probe\n", m.Name)
				continue
			}
			cfgs = append(cfgs, llm.ClientConfig{
				Name: m.Name, BaseURL: m.BaseURL, Model: m.Model, APIKeyEnv: m.APIKeyEnv,
				Temperature: m.Temperature, TopP: m.TopP, MaxTokens: m.MaxTokens, Timeout: m.Timeout,
				ReasoningEffort: m.ReasoningEffort, ExtraBody: m.ExtraBody,
			})
			modes = append(modes, string(m.Mode))
		}
		for _, q := range sc.Questionnaires {
			if q.File != "" {
				in, err = questionnaires.Load(q.File)
			} else if q.Name != questionnaires.PersonaName {
				in, err = questionnaires.Builtin(q.Name)
			}
			if err != nil {
				return fmt.Errorf("%w: questionnaire %q: %v", errBadInput, q.Name, err)
			}
			if in != nil {
				break
			}
		}
	}
	if in == nil {
		if in, err = questionnaires.Builtin("pvq40"); err != nil {
			return err
		}
	}
	q := &agent.Question{Persona: agent.Persona{Value: values.Achievement, Style: agent.StyleDescription}, Instrument: in}
	var failed []string
	for i, cfg := range cfgs {
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
		if modes[i] != "" && modes[i] != rep.Mode {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the scenario asks for mode = %q", modes[i]))
		}
		printProbe(stdout, cfg.Name, rep)
	}
	if len(failed) > 0 {
		return fmt.Errorf("probe: %s", strings.Join(failed, "; "))
	}
	return nil
}

// printProbe writes a probe's findings and the settings it suggests.
func printProbe(w io.Writer, name string, r *llm.ProbeReport) {
	yes := func(ok bool, why string) string {
		if ok {
			return "yes"
		}
		if why == "" {
			return "no"
		}
		return "no (" + why + ")"
	}
	fmt.Fprintf(w, "model %s at %s\n", name, strings.TrimSuffix(r.URL, "/"))
	line := func(k, v string) { fmt.Fprintf(w, "  %-19s %s\n", k+":", v) }
	line("reachable", "yes")
	switch {
	case r.Listed == nil:
		line("model served", "unknown (no model list)")
	case r.Served:
		line("model served", fmt.Sprintf("yes (%s listed)", r.Model))
	default:
		line("model served", fmt.Sprintf("not listed (served: %s)", strings.Join(r.Listed, ", ")))
	}
	line("chat", yes(r.Chat, r.ChatErr))
	line("completions", yes(r.Completions, r.CompletionsErr))
	if r.Chat {
		line("reply", fmt.Sprintf("%s (%d tokens, finish %s)", strconv.Quote(clip(r.Reply, 80)), r.ReplyTokens, r.Finish))
	}
	switch {
	case !r.Reasons:
		line("reasons", "no")
	case r.ReasoningOff != nil:
		line("reasons", fmt.Sprintf("yes, in %s; switched off by %s", r.ReasoningIn, compactJSON(r.ReasoningOff)))
	default:
		line("reasons", fmt.Sprintf("yes, in %s; neither chat_template_kwargs.enable_thinking = false nor reasoning_effort = \"none\" switched it off", r.ReasoningIn))
	}
	lp := yes(r.Logprobs, r.LogprobsErr)
	if r.Logprobs {
		lp = fmt.Sprintf("yes, %d alternatives per token", r.TopLogprobs)
	}
	if r.TopCap > 0 {
		lp += fmt.Sprintf(" (the server caps top_logprobs at %d)", r.TopCap)
	}
	line("logprobs", lp)
	if r.N > 0 {
		line("n", fmt.Sprintf("%d choices for n = 3", r.N))
	} else {
		line("n", "no ("+r.NErr+")")
	}
	switch r.Seed {
	case "same":
		line("seed", "yes (the same seed gave the same text)")
	case "differs":
		line("seed", "accepted, but the same seed gave different texts")
	default:
		line("seed", r.Seed)
	}
	line("structured outputs", r.Structured)
	fmt.Fprintln(w, "  suggested settings for its [[models]] entry:")
	fmt.Fprintf(w, "    mode = %q\n", r.Mode)
	if r.Mode == llm.ModeSample {
		fmt.Fprintf(w, "    max_tokens = %d\n", r.MaxTokens)
	}
	if r.ReasoningOff != nil {
		if eff, ok := r.ReasoningOff["reasoning_effort"].(string); ok {
			fmt.Fprintf(w, "    reasoning_effort = %q\n", eff)
		} else {
			fmt.Fprintf(w, "    extra_body = %s\n", tomlInline(r.ReasoningOff))
		}
	}
	if r.Structured == "honoured" && r.Mode == llm.ModeSample {
		fmt.Fprintln(w, "    structured_outputs = true")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func compactJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// tomlInline writes a table of strings, booleans, numbers and tables as
// a TOML inline table.
func tomlInline(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		var v string
		switch x := m[k].(type) {
		case map[string]any:
			v = tomlInline(x)
		case string:
			v = strconv.Quote(x)
		default:
			v = fmt.Sprint(x)
		}
		parts = append(parts, k+" = "+v)
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}
