package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// The KV bucket is the model cache's shared tier.
var _ llm.Store = (*bus.KVStore)(nil)

// promptServer is an OpenAI-compatible chat endpoint that answers each
// request from its prompt, and counts the requests per prompt.
type promptServer struct {
	mu    sync.Mutex
	calls map[string]int
}

func (s *promptServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		N        int `json:"n"`
		Messages []struct {
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var prompt string
	for _, m := range req.Messages {
		prompt += m.Content + "\n"
	}
	s.mu.Lock()
	s.calls[prompt]++
	s.mu.Unlock()
	choices := make([]map[string]any, max(req.N, 1))
	for i := range choices {
		choices[i] = map[string]any{"index": i, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": fmt.Sprint(1 + (len(prompt)+i)%6)}}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": "x", "object": "chat.completion", "model": "m", "choices": choices,
		"usage": map[string]int{"prompt_tokens": 10, "completion_tokens": len(choices), "total_tokens": 10 + len(choices)}})
}

func (s *promptServer) counts() (total, distinct, most int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.calls {
		total += n
		most = max(most, n)
	}
	return total, len(s.calls), most
}

// Two agent hosts, each with a cache file of its own, share the run's KV
// bucket: a prompt one host paid for is not paid for again by the other,
// and the other answers the same.
func TestCacheSharedAcrossHosts(t *testing.T) {
	ctx := t.Context()
	srv, err := bus.StartServer(bus.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	questions := func(from, to int) []*agent.Question {
		var qs []*agent.Question
		for _, v := range []values.Value{values.Achievement, values.Benevolence} {
			for item := from; item < to; item++ {
				qs = append(qs, &agent.Question{Persona: agent.Persona{Value: v, Style: agent.StyleDescription}, Instrument: in, Item: item})
			}
		}
		return qs
	}
	// host answers qs through a client with its own local store and, when
	// shared is set, the bucket as shared tier.
	host := func(url string, shared bool, qs []*agent.Question) []agent.Answer {
		t.Helper()
		local, err := llm.OpenFileStore(t.TempDir(), llm.FileStoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer local.Close()
		var opts []llm.CacheOption
		if shared {
			kv, err := bus.NewKVStore(ctx, js, "replies", 1<<24)
			if err != nil {
				t.Fatal(err)
			}
			opts = append(opts, llm.WithShared(kv))
		}
		c, err := llm.NewClient(llm.ClientConfig{BaseURL: url + "/v1", Model: "m", Mode: llm.ModeSample, Concurrency: 4,
			Timeout: 5 * time.Second, BreakerThreshold: -1, Cache: llm.NewCache(local, opts...)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		out := make([]agent.Answer, len(qs))
		for i, q := range qs {
			r, err := c.Ask(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = r.Answer
		}
		return out
	}

	for _, tc := range []struct {
		name   string
		shared bool
		want   int
	}{
		// Host 1 asks items 0–9, host 2 items 5–14, of two personas:
		// 30 distinct prompts, 10 of them asked by both hosts.
		{"shared", true, 30},
		{"local only", false, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := &promptServer{calls: map[string]int{}}
			ts := httptest.NewServer(ps)
			defer ts.Close()
			first := host(ts.URL, tc.shared, questions(0, 10))
			second := host(ts.URL, tc.shared, questions(5, 15))
			total, distinct, most := ps.counts()
			if total != tc.want || distinct != 30 {
				t.Errorf("got %d model calls for %d distinct prompts, want %d for 30", total, distinct, tc.want)
			}
			if tc.shared && most != 1 {
				t.Errorf("got a prompt asked %d times, want each once", most)
			}
			// The overlap (items 5–9 of each persona) answers the same on
			// both hosts.
			for p := range 2 {
				for i := 5; i < 10; i++ {
					a, b := first[p*10+i], second[p*10+i-5]
					if a != b || !a.Valid {
						t.Errorf("persona %d item %d: host 2 got %+v, host 1 %+v; want the same valid answer", p, i, b, a)
					}
				}
			}
		})
	}
}
