package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/scenarios"
)

// unreadableServer answers every chat request, as a real server does, with
// n copies of text.
func unreadableServer(t *testing.T, text string) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			N int `json:"n"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		choices := make([]map[string]any, max(req.N, 1))
		for i := range choices {
			choices[i] = map[string]any{"index": i, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": text}}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "c", "object": "chat.completion", "model": "m", "choices": choices,
			"usage": map[string]any{"prompt_tokens": 50, "completion_tokens": 9000, "total_tokens": 9050}})
	}))
	t.Cleanup(hs.Close)
	return hs
}

// Case long_unreadable of the compatibility cases: a 42 kB unreadable reply
// to every request, population 150, samples 50, one item, one shard. The
// run completes with every answer invalid with its reason and its raw text
// cut to agent.MaxRaw with its length noted, and no bus message over the
// server's max payload, here lowered to 64 KiB so that one shard's invalid
// answers must be split.
func TestLongUnreadableFitsThePayload(t *testing.T) {
	long := strings.Repeat("I appreciate the question, but as a language model I do not hold personal views on this. ", 472)
	if len(long) < 42_000 || len(long) > 43_000 {
		t.Fatalf("reply is %d bytes, want about 42 kB", len(long))
	}
	hs := unreadableServer(t, long)
	dir := t.TempDir()
	path := writeScenario(t, dir, "long", `name = "long"
seed = 3
[population]
size = 150
[[models]]
name = "m"
backend = "openai"
base_url = "`+hs.URL+`/v1"
model = "m"
mode = "sample"
samples = 50
concurrency = 16
timeout = "20s"
[[questionnaires]]
name = "pvq40"
items = 12
[run]
shards = 1
`)
	sc, err := scenarios.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// One item keeps the 42 kB replies few. Validation refuses a PVQ of
	// fewer than 12 items, whose values cannot be scored; every answer here
	// is invalid and nothing is scored anyway.
	sc.Questionnaires[0].Items = 1
	const maxPayload = 64 << 10
	var (
		batches, biggest atomic.Int64
	)
	out := filepath.Join(dir, "out")
	res, err := runScenario(context.Background(), runConfig{Scenario: sc, Out: out, CacheDir: filepath.Join(dir, "cache"),
		NATSMaxPayload: maxPayload, Observer: batchObserver(func(b *agent.Batch) {
			batches.Add(1)
			if n := int64(len(bus.AppendBatch(nil, b))); n > biggest.Load() {
				biggest.Store(n)
			}
		})})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Outcome.Results.Answers; got != (analysis.AnswerCounts{Expected: 150, Invalid: 150}) {
		t.Errorf("answers: got %+v, want 150 expected, all invalid", got)
	}
	if batches.Load() < 2 || biggest.Load() > maxPayload {
		t.Errorf("got %d batches, the biggest %d bytes; want the shard's answers split under %d", batches.Load(), biggest.Load(), maxPayload)
	}
	f, err := os.Open(filepath.Join(out, "invalid.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		var iv analysis.InvalidAnswer
		if err := json.Unmarshal(s.Bytes(), &iv); err != nil {
			t.Fatal(err)
		}
		lines++
		if iv.RawBytes != len(long) || len(iv.Raw) > agent.MaxRaw || !strings.HasPrefix(iv.Raw, long[:100]) || !strings.Contains(iv.Raw, "bytes]") {
			t.Fatalf("agent %d: raw %d bytes (full %d), want at most %d of the %d-byte reply with its length noted", iv.Agent, len(iv.Raw), iv.RawBytes, agent.MaxRaw, len(long))
		}
		if iv.Reason == "" || len(iv.Reason) > agent.MaxReason {
			t.Fatalf("agent %d: reason of %d bytes, want one within %d", iv.Agent, len(iv.Reason), agent.MaxReason)
		}
	}
	if lines != 150 {
		t.Errorf("invalid.jsonl: got %d lines, want 150", lines)
	}
	t.Logf("%d batches, the biggest %d bytes", batches.Load(), biggest.Load())
}
