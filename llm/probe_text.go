package llm

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// WriteText writes the probe's findings about model name and the
// [[models]] settings they suggest, as "society probe" prints them.
func (r *ProbeReport) WriteText(w io.Writer, name string) {
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
	case r.Served && slices.Contains(r.Listed, r.Model):
		line("model served", fmt.Sprintf("yes (%s listed)", r.Model))
	case r.Served:
		line("model served", fmt.Sprintf("yes (retrieved by name; the list has %s)", strings.Join(r.Listed, ", ")))
	default:
		line("model served", fmt.Sprintf("not listed, nor retrieved by name (the list has %s)", strings.Join(r.Listed, ", ")))
	}
	line("chat", yes(r.Chat, r.ChatErr))
	line("completions", yes(r.Completions, r.CompletionsErr))
	if r.Chat {
		line("reply", fmt.Sprintf("%s (%d tokens, finish %s)", strconv.Quote(clipText(r.Reply, 80)), r.ReplyTokens, r.Finish))
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
	if r.Mode == ModeSample {
		fmt.Fprintf(w, "    max_tokens = %d\n", r.MaxTokens)
	}
	if r.ReasoningOff != nil {
		if eff, ok := r.ReasoningOff["reasoning_effort"].(string); ok {
			fmt.Fprintf(w, "    reasoning_effort = %q\n", eff)
		} else {
			fmt.Fprintf(w, "    extra_body = %s\n", tomlInline(r.ReasoningOff))
		}
	}
	if r.Structured == "honoured" && r.Mode == ModeSample {
		fmt.Fprintln(w, "    structured_outputs = true")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func clipText(s string, n int) string {
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
