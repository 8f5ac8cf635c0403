package llm

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/values"
)

// A client records what the endpoint says about itself: the model server
// declares the synthetic respondents (header and fingerprint), a server
// answering as vLLM does declares a model and nothing synthetic.
func TestClientServed(t *testing.T) {
	in := pvq(t)
	for _, tc := range []struct {
		name, endpoint string
	}{{"chat", EndpointChat}, {"completions", EndpointCompletions}} {
		t.Run("model-server/"+tc.name, func(t *testing.T) {
			_, ts := srvTestServer(t, modelserver.Options{Seed: 3})
			cfg := testConfig(ts.URL)
			cfg.Endpoint = tc.endpoint
			c := newClient(t, cfg)
			if _, err := c.Ask(context.Background(), question(in, values.Power, 0, 0)); err != nil {
				t.Fatal(err)
			}
			got := c.Served(context.Background())
			if !got.Synthetic {
				t.Errorf("synthetic: got false, want true (%+v)", got)
			}
			if tc.endpoint == EndpointChat && got.Fingerprint != "society-synthetic" {
				t.Errorf("fingerprint: got %q, want %q", got.Fingerprint, "society-synthetic")
			}
		})
	}
	// A rerun from the cache makes no call, yet its answers came from the
	// model server: the label comes back from the cache with them.
	t.Run("model-server/cached", func(t *testing.T) {
		_, ts := srvTestServer(t, modelserver.Options{Seed: 3})
		cfg := testConfig(ts.URL)
		cfg.Cache = NewCache(NewMemStore())
		first := newClient(t, cfg)
		q := question(in, values.Power, 0, 0)
		if _, err := first.Ask(context.Background(), q); err != nil {
			t.Fatal(err)
		}
		again := newClient(t, cfg)
		// A run checks the endpoint first: its headers say synthetic
		// and name no model, which must not hide (or replace) the
		// cache's record.
		if _, _, err := again.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := again.Ask(context.Background(), q); err != nil {
			t.Fatal(err)
		}
		if n := again.Stats().Calls; n != 0 {
			t.Fatalf("rerun: got %d calls, want 0", n)
		}
		if got := again.Served(context.Background()); !got.Synthetic || got.Fingerprint != "society-synthetic" {
			t.Errorf("rerun from the cache: got %+v, want the model server's label", got)
		}
		third := newClient(t, cfg)
		if _, _, err := third.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := third.Served(context.Background()); got.Fingerprint != "society-synthetic" {
			t.Errorf("after a second rerun's check: got %+v, want the record the first run wrote", got)
		}
	})
	t.Run("model", func(t *testing.T) {
		srv := newOpenAIServer(t, func(r seenReq) (int, any) {
			out := textsReply(r, "4")
			out["model"] = "meta-llama/Meta-Llama-3-8B-Instruct"
			out["system_fingerprint"] = "fp_44709d6fcb"
			return 200, out
		})
		c := newClient(t, testConfig(srv.URL))
		if _, err := c.Ask(context.Background(), question(in, values.Power, 0, 0)); err != nil {
			t.Fatal(err)
		}
		want := Served{Model: "meta-llama/Meta-Llama-3-8B-Instruct", Fingerprint: "fp_44709d6fcb",
			LastModel: "meta-llama/Meta-Llama-3-8B-Instruct", LastFingerprint: "fp_44709d6fcb"}
		if got := c.Served(context.Background()); got != want {
			t.Errorf("served: got %+v, want %+v", got, want)
		}
	})
	// A server updated mid-run answers with another fingerprint: the
	// first and the last are kept, the change is flagged and warned of.
	t.Run("fingerprint changed", func(t *testing.T) {
		var n atomic.Int64
		srv := newOpenAIServer(t, func(r seenReq) (int, any) {
			out := textsReply(r, "4")
			out["model"] = "llama"
			out["system_fingerprint"] = "fp_a"
			if n.Add(1) > 1 {
				out["system_fingerprint"] = "fp_b"
			}
			return 200, out
		})
		var log bytes.Buffer
		cfg := testConfig(srv.URL)
		cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
		c := newClient(t, cfg)
		for item := range 3 {
			if _, err := c.Ask(context.Background(), question(in, values.Power, item, 0)); err != nil {
				t.Fatal(err)
			}
		}
		want := Served{Model: "llama", Fingerprint: "fp_a", LastModel: "llama", LastFingerprint: "fp_b", FingerprintChanged: true}
		if got := c.Served(context.Background()); got != want {
			t.Errorf("served: got %+v, want %+v", got, want)
		}
		if !strings.Contains(log.String(), "system_fingerprint changed") || strings.Count(log.String(), "changed during the run") != 1 {
			t.Errorf("log: got %q, want one warning of the changed fingerprint", log.String())
		}
	})
}

// Every strict retry is counted: the script server's samples 3 and 4 of
// every five are unreadable, and only those are asked again.
func TestClientStrictRetriesCounted(t *testing.T) {
	in := pvq(t)
	srv := scriptServer(t, agent.Render(question(in, values.Power, 0, 0)))
	cfg := testConfig(srv.URL)
	cfg.Samples = 10
	cfg.Seed = ptr(uint64(0))
	c := newClient(t, cfg)
	for s := range 10 {
		if _, err := c.Ask(context.Background(), question(in, values.Power, 0, s)); err != nil {
			t.Fatal(err)
		}
	}
	strict := 0
	for _, r := range srv.requests() {
		if r.strict() {
			strict++
		}
	}
	if strict == 0 {
		t.Fatal("server saw no strict retry; the test needs some")
	}
	if got := c.Stats().StrictRetries; got != int64(strict) {
		t.Errorf("strict retries: got %d, want %d (the server's count)", got, strict)
	}
}
