package llm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

func pvq(t testing.TB) *questionnaires.Instrument {
	t.Helper()
	in, err := questionnaires.Builtin("pvq40")
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func question(in *questionnaires.Instrument, v values.Value, item, sample int) *agent.Question {
	return &agent.Question{Persona: agent.Persona{Value: v, Style: agent.StyleDescription}, Instrument: in, Item: item, Sample: sample}
}

func ptr[T any](v T) *T { return &v }

// testConfig is a client configuration for a test server: fast retries,
// no breaker unless a test wants one, and a timeout no loaded machine
// reaches by slowness alone (a test of timeouts sets its own, on the
// synctest clock).
func testConfig(url string) ClientConfig {
	return ClientConfig{
		Name: "test", BaseURL: url + "/v1", Model: "test-model", Mode: ModeSample,
		Temperature: ptr(1.0), Concurrency: 8, Timeout: time.Minute,
		Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, BreakerThreshold: -1,
	}
}

func newClient(t testing.TB, cfg ClientConfig) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// askAll asks every question concurrently and returns the replies in order.
func askAll(t *testing.T, c *Client, qs []*agent.Question) []agent.Reply {
	t.Helper()
	out := make([]agent.Reply, len(qs))
	errs := make([]error, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = c.Ask(context.Background(), q)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// sampleScript is what the sample-mode test server writes for sample i
// (recovered from the request's seed): mostly readable answers, some
// unreadable ones, of which some become readable under the strict
// instruction.
func sampleScript(i int) string {
	switch i % 5 {
	case 0:
		return "4"
	case 1:
		return "I'd say 5."
	case 2:
		return "**2** - not like me"
	case 3:
		return "As an AI, I cannot have values."
	default:
		return "Like me"
	}
}

func sampleValue(i int) (int, bool) {
	switch i % 5 {
	case 0:
		return 4, true
	case 1:
		return 5, true
	case 2:
		return 2, true
	case 3:
		if i%10 == 3 {
			return 6, true // the strict retry reads "6"
		}
		return 0, false
	default:
		return 5, true
	}
}

// sampleOfSeed recovers the sample index a request's seed was derived
// from (seedFor with configured seed base and prompt p), and whether it is
// a strict retry's.
func sampleOfSeed(t testing.TB, base uint64, p agent.Prompt, seed uint64) (int, bool) {
	t.Helper()
	for i := range 1000 {
		for _, strict := range []bool{false, true} {
			if *seedFor(&base, p, i, strict) == seed {
				return i, strict
			}
		}
	}
	t.Errorf("seed %d derives from no sample of the prompt", seed)
	return -1, false
}

// scriptServer answers sample requests for prompt p (seed base 0) from
// sampleScript, n choices per request, and strict retries with "6" or
// more nonsense.
func scriptServer(t *testing.T, p agent.Prompt) *openAIServer {
	return newOpenAIServer(t, func(r seenReq) (int, any) {
		seed, _ := r.seed()
		i, strict := sampleOfSeed(t, 0, p, seed)
		if strict != r.strict() {
			t.Errorf("request with seed of sample %d strict %v: strict instruction %v", i, strict, r.strict())
		}
		if r.strict() {
			if i%10 == 3 {
				return 200, textsReply(r, "6")
			}
			return 200, textsReply(r, "I really cannot say.")
		}
		first := i
		texts := make([]string, r.n())
		for j := range texts {
			texts[j] = sampleScript(first + j)
		}
		return 200, textsReply(r, texts...)
	})
}

func TestClientSampleBlocks(t *testing.T) {
	in := pvq(t)
	type variant struct {
		endpoint string
		demand   int // 0: unknown
	}
	for _, v := range []variant{{EndpointChat, 0}, {EndpointCompletions, 0}, {EndpointChat, 12}, {EndpointCompletions, 12}} {
		t.Run(fmt.Sprintf("%s demand %d", v.endpoint, v.demand), func(t *testing.T) {
			srv := scriptServer(t, agent.Render(question(in, values.Power, 3, 0)))
			cfg := testConfig(srv.URL)
			cfg.Samples, cfg.Seed, cfg.Endpoint = 5, ptr(uint64(0)), v.endpoint
			if v.demand > 0 {
				cfg.Demand = func(p agent.Persona) int {
					if p.Value != values.Power {
						t.Errorf("demand asked for %v, want Power", p.Value)
					}
					return v.demand
				}
			}
			c := newClient(t, cfg)
			const agents = 12 // blocks of 5, 5 and 2
			var qs []*agent.Question
			for i := range agents {
				qs = append(qs, question(in, values.Power, 3, i))
			}
			replies := askAll(t, c, qs)

			for i, r := range replies {
				want, valid := sampleValue(i)
				a := r.Answer
				if a.Valid != valid || a.Value != want {
					t.Errorf("sample %d: got %d valid %v (raw %q, %s), want %d valid %v", i, a.Value, a.Valid, a.Raw, a.Reason, want, valid)
				}
				if a.Raw == "" {
					t.Errorf("sample %d: got no raw text, want it kept", i)
				}
				if !valid && (!strings.Contains(a.Raw, "As an AI") || !strings.Contains(a.Reason, "refusal")) {
					t.Errorf("sample %d: invalid answer raw %q reason %q, want the first reply and its reason", i, a.Raw, a.Reason)
				}
			}
			var blocks, strict int
			for _, r := range srv.requests() {
				if r.strict() {
					strict++
					if r.n() != 1 {
						t.Errorf("strict retry asked n=%d, want 1", r.n())
					}
					continue
				}
				blocks++
				seed, _ := r.seed()
				first, _ := sampleOfSeed(t, 0, agent.Render(qs[0]), seed)
				want := 5
				if first == 10 && v.demand > 0 {
					want = v.demand - 10 // the third block is cut to the demand
				}
				if r.n() != want {
					t.Errorf("block request from sample %d asked n=%d, want %d", first, r.n(), want)
				}
			}
			// Samples 3 and 8 are unreadable; 13, in the third block
			// (fetched whole without a demand), is used by no agent and
			// never retried.
			if blocks != 3 || strict != 2 {
				t.Errorf("got %d block requests and %d strict retries, want 3 and 2", blocks, strict)
			}
			st := c.Stats()
			if st.Calls != 5 || st.Invalid != 1 {
				t.Errorf("stats: got %d calls and %d invalid, want 5 and 1", st.Calls, st.Invalid)
			}
			wantCompletion := int64(5 + 5 + 5 + 2)
			if v.demand > 0 {
				wantCompletion = 5 + 5 + 2 + 2
			}
			if st.PromptTokens != 50 || st.CompletionTokens != wantCompletion {
				t.Errorf("tokens: got %d prompt and %d completion, want 50 and %d", st.PromptTokens, st.CompletionTokens, wantCompletion)
			}
		})
	}
}

// A server that ignores n (one choice per request) still fills a block.
func TestClientServerIgnoringN(t *testing.T) {
	srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 200, textsReply(r, "3") })
	cfg := testConfig(srv.URL)
	cfg.Samples = 4
	c := newClient(t, cfg)
	in := pvq(t)
	replies := askAll(t, c, []*agent.Question{question(in, values.None, 0, 0), question(in, values.None, 0, 3)})
	for i, r := range replies {
		if r.Answer.Value != 3 || !r.Answer.Valid {
			t.Errorf("reply %d: got %+v, want a valid 3", i, r.Answer)
		}
	}
	if got := srv.calls.Load(); got != 4 {
		t.Errorf("got %d requests, want 4 (one per sample of the block)", got)
	}
}

func TestClientRequestBody(t *testing.T) {
	in := pvq(t)
	tests := []struct {
		name     string
		endpoint string
		mode     string
		check    func(t *testing.T, r seenReq)
	}{
		{"chat sample", EndpointChat, ModeSample, func(t *testing.T, r seenReq) {
			if r.Path != "/v1/chat/completions" {
				t.Errorf("path: got %s, want /v1/chat/completions", r.Path)
			}
			msgs, _ := r.Body["messages"].([]any)
			if len(msgs) != 2 {
				t.Fatalf("messages: got %d, want system and user", len(msgs))
			}
			sys, _ := msgs[0].(map[string]any)
			if sys["role"] != "system" || !strings.Contains(sys["content"].(string), "power") {
				t.Errorf("first message: got %v, want the value prefix as system message", sys)
			}
			if f, ok := r.num("max_tokens"); !ok || f != 16 {
				t.Errorf("max_tokens: got %v, want 16", r.Body["max_tokens"])
			}
		}},
		{"chat distribution", EndpointChat, ModeDistribution, func(t *testing.T, r seenReq) {
			if r.Body["logprobs"] != true {
				t.Errorf("logprobs: got %v, want true", r.Body["logprobs"])
			}
			if f, _ := r.num("top_logprobs"); f != 20 {
				t.Errorf("top_logprobs: got %v, want 20", r.Body["top_logprobs"])
			}
			if f, _ := r.num("max_tokens"); f != 1 {
				t.Errorf("max_tokens: got %v, want 1", r.Body["max_tokens"])
			}
		}},
		{"completions distribution", EndpointCompletions, ModeDistribution, func(t *testing.T, r seenReq) {
			if r.Path != "/v1/completions" {
				t.Errorf("path: got %s, want /v1/completions", r.Path)
			}
			p, _ := r.Body["prompt"].(string)
			if !strings.HasPrefix(p, agent.Prefix(agent.Persona{Value: values.Power})) || !strings.HasSuffix(p, "Answer:") {
				t.Errorf("prompt: got %q, want the value prefix first and the answer cue last", p)
			}
			if f, _ := r.num("logprobs"); f != 20 {
				t.Errorf("logprobs: got %v, want 20", r.Body["logprobs"])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newOpenAIServer(t, func(r seenReq) (int, any) {
				if r.dist() {
					return 200, topReply(r, map[string]float64{"4": 0.9, "5": 0.1})
				}
				return 200, textsReply(r, "4")
			})
			cfg := testConfig(srv.URL)
			cfg.Endpoint, cfg.Mode = tt.endpoint, tt.mode
			cfg.Temperature, cfg.Seed, cfg.StructuredOutputs, cfg.MaxTokens = ptr(0.0), ptr(uint64(1)<<62), true, 16
			c := newClient(t, cfg)
			if _, err := c.Ask(context.Background(), question(in, values.Power, 0, 0)); err != nil {
				t.Fatal(err)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if !strings.Contains(string(r.Raw), `"temperature":0`) {
				t.Errorf("body %s: want an explicit \"temperature\":0", r.Raw)
			}
			want := *seedFor(ptr(uint64(1)<<62), agent.Render(question(in, values.Power, 0, 0)), 0, false)
			if s, ok := r.seed(); !ok || s != want {
				t.Errorf("seed: got %v, want %d", r.Body["seed"], want)
			}
			so, _ := r.Body["structured_outputs"].(map[string]any)
			if got := fmt.Sprint(so["choice"]); got != "[1 2 3 4 5 6]" {
				t.Errorf("structured_outputs.choice: got %s, want [1 2 3 4 5 6]", got)
			}
			if m, _ := r.Body["model"].(string); m != "test-model" {
				t.Errorf("model: got %q, want test-model", m)
			}
			tt.check(t, r)
		})
	}
}

func TestClientDistribution(t *testing.T) {
	in := pvq(t)
	tests := []struct {
		name     string
		endpoint string
		temp     *float64
		top      map[string]float64
		want     []float64
		coverage float64
	}{
		{"renormalised", EndpointChat, ptr(1.0),
			map[string]float64{"4": 0.4, " 4": 0.1, "5": 0.3, "3": 0.1, "The": 0.05, "I": 0.05},
			[]float64{0, 0, 0.1 / 0.9, 0.5 / 0.9, 0.3 / 0.9, 0}, 0.9},
		{"completions", EndpointCompletions, ptr(1.0),
			map[string]float64{" 2": 0.5, " 6": 0.25, "\n": 0.25},
			[]float64{0, 2.0 / 3, 0, 0, 0, 1.0 / 3}, 0.75},
		{"temperature one half sharpens", EndpointChat, ptr(0.5),
			map[string]float64{"1": 0.6, "2": 0.3},
			[]float64{0.8, 0.2, 0, 0, 0, 0}, 0.9},
		{"temperature zero is the mode", EndpointChat, ptr(0.0),
			map[string]float64{"1": 0.3, "2": 0.6},
			[]float64{0, 1, 0, 0, 0, 0}, 0.9},
		{"no temperature is the model's", EndpointChat, nil,
			map[string]float64{"1": 0.5, "6": 0.5},
			[]float64{0.5, 0, 0, 0, 0, 0.5}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 200, topReply(r, tt.top) })
			cfg := testConfig(srv.URL)
			cfg.Mode, cfg.Endpoint, cfg.Temperature = ModeDistribution, tt.endpoint, tt.temp
			c := newClient(t, cfg)
			r, err := c.Ask(context.Background(), question(in, values.Security, 4, 0))
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Dist) != len(tt.want) {
				t.Fatalf("dist: got %v, want %v", r.Dist, tt.want)
			}
			for i := range tt.want {
				if math.Abs(r.Dist[i]-tt.want[i]) > 1e-6 {
					t.Fatalf("dist: got %v, want %v", r.Dist, tt.want)
				}
			}
			st := c.Stats()
			if st.CoverageN != 1 || math.Abs(st.CoverageSum-tt.coverage) > 1e-6 || st.Fallbacks != 0 {
				t.Errorf("coverage: got sum %v n %d fallbacks %d, want %v, 1, 0", st.CoverageSum, st.CoverageN, st.Fallbacks, tt.coverage)
			}
		})
	}
}

func TestClientDistributionFallback(t *testing.T) {
	in := pvq(t)
	tests := []struct {
		name string
		top  map[string]float64 // nil: the server returns no log-probabilities
	}{
		{"low coverage", map[string]float64{"The": 0.7, "4": 0.2}},
		{"no logprobs", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newOpenAIServer(t, func(r seenReq) (int, any) {
				if r.dist() && tt.top != nil {
					return 200, topReply(r, tt.top)
				}
				return 200, textsReply(r, "The answer is 4.")
			})
			cfg := testConfig(srv.URL)
			cfg.Mode = ModeDistribution
			cfg.Cache = NewCache(NewMemStore())
			c := newClient(t, cfg)
			for range 2 {
				r, err := c.Ask(context.Background(), question(in, values.Tradition, 8, 0))
				if err != nil {
					t.Fatal(err)
				}
				if r.Dist != nil || !r.Answer.Valid || r.Answer.Value != 4 {
					t.Fatalf("got %+v, want a sampled answer 4", r)
				}
			}
			st := c.Stats()
			// The second Ask reads its sample from the cache (a call
			// saved); the fallback is remembered, not asked for again.
			if st.Fallbacks != 1 || st.Calls != 2 || st.CacheHits != 1 {
				t.Errorf("got %d fallbacks, %d calls, %d cache hits; want 1, 2, 1", st.Fallbacks, st.Calls, st.CacheHits)
			}
		})
	}
}

func TestClientAPIKey(t *testing.T) {
	const secret = "sk-test-0123456789abcdef"
	t.Setenv("SOCIETY_TEST_API_KEY", secret)
	srv := newOpenAIServer(t, func(r seenReq) (int, any) {
		if r.Header.Get("Authorization") != "Bearer "+secret {
			return 401, apiError("missing key")
		}
		// A careless server echoing the credential back in its error.
		return 400, apiError("bad request from " + r.Header.Get("Authorization"))
	})
	cfg := testConfig(srv.URL)
	cfg.APIKeyEnv = "SOCIETY_TEST_API_KEY"
	c := newClient(t, cfg)
	_, err := c.Ask(context.Background(), question(pvq(t), values.Hedonism, 1, 0))
	if err == nil {
		t.Fatal("got no error from a 400, want one")
	}
	if !strings.Contains(err.Error(), "bad request from Bearer") {
		t.Fatalf("got %v, want the server's 400 (the key was not sent)", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q contains the API key", err)
	}
	if got := fmt.Sprintf("%+v", c.Stats()); strings.Contains(got, secret) {
		t.Errorf("stats %s contain the API key", got)
	}
	if st := c.Stats(); st.Failures != 1 || st.Retries != 0 {
		t.Errorf("got %d failures and %d retries, want 1 and 0 (a 400 is not retried)", st.Failures, st.Retries)
	}

	t.Run("missing variable", func(t *testing.T) {
		cfg.APIKeyEnv = "SOCIETY_TEST_NO_SUCH_KEY"
		_, err := NewClient(cfg)
		if err == nil || !strings.Contains(err.Error(), "SOCIETY_TEST_NO_SUCH_KEY") {
			t.Errorf("got %v, want an error naming SOCIETY_TEST_NO_SUCH_KEY", err)
		}
	})
}

func TestNewClientInvalid(t *testing.T) {
	tests := []struct {
		name string
		edit func(*ClientConfig)
		want string
	}{
		{"no model", func(c *ClientConfig) { c.Model = "" }, "model"},
		{"mode", func(c *ClientConfig) { c.Mode = "guess" }, "mode"},
		{"endpoint", func(c *ClientConfig) { c.Endpoint = "embeddings" }, "endpoint"},
		{"temperature", func(c *ClientConfig) { c.Temperature = ptr(-1.0) }, "temperature"},
		{"several at once", func(c *ClientConfig) { c.Mode, c.Endpoint = "x", "y" }, "endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("http://127.0.0.1:1")
			tt.edit(&cfg)
			_, err := NewClient(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error about %s", err, tt.want)
			}
		})
	}
}

// TestClientRetries runs on the synctest clock: an attempt that hangs
// past the timeout times out exactly, and one that answers in time is
// never taken for a timeout, however busy the machine.
func TestClientRetries(t *testing.T) {
	in := pvq(t)
	tests := []struct {
		name    string
		fail    []int // statuses of the first attempts; 0 = hang past the timeout
		retries int64
	}{
		{"429 twice", []int{429, 429}, 2},
		{"5xx", []int{500, 502, 503}, 3},
		{"timeout", []int{0}, 1},
		{"mixed", []int{429, 0, 500}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				n := 0
				srv := newPipeOpenAIServer(t, func(r seenReq) (int, any) {
					mu.Lock()
					i := n
					n++
					mu.Unlock()
					if i < len(tt.fail) {
						if tt.fail[i] == 0 {
							r.wait(300 * time.Millisecond)
							return 200, textsReply(r, "1") // too late
						}
						return tt.fail[i], http.Header{"Retry-After": {"0"}}
					}
					return 200, textsReply(r, "5")
				})
				cfg := testConfig(srv.URL)
				cfg.Timeout = 100 * time.Millisecond
				c := pipeClient(t, srv, cfg)
				r, err := c.Ask(context.Background(), question(in, values.Achievement, 2, 0))
				if err != nil {
					t.Fatal(err)
				}
				if r.Answer.Value != 5 {
					t.Errorf("answer: got %d, want 5 (from the attempt that succeeded)", r.Answer.Value)
				}
				st := c.Stats()
				if st.Retries != tt.retries || st.Calls != 1 || st.Failures != 0 {
					t.Errorf("got %d retries, %d calls, %d failures; want %d, 1, 0", st.Retries, st.Calls, st.Failures, tt.retries)
				}
				if got := srv.calls.Load(); got != tt.retries+1 {
					t.Errorf("server saw %d attempts, want %d", got, tt.retries+1)
				}
			})
		})
	}
}

func TestClientUnavailable(t *testing.T) {
	srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 503, apiError("overloaded") })
	cfg := testConfig(srv.URL)
	cfg.MaxRetries = 2
	c := newClient(t, cfg)
	_, err := c.Ask(context.Background(), question(pvq(t), values.Benevolence, 0, 0))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if got := srv.calls.Load(); got != 3 {
		t.Errorf("server saw %d attempts, want 3", got)
	}
	if st := c.Stats(); st.Failures != 1 || st.Retries != 2 {
		t.Errorf("got %d failures and %d retries, want 1 and 2", st.Failures, st.Retries)
	}
}

func TestClientConnectionRefused(t *testing.T) {
	srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 200, nil })
	url := srv.URL
	srv.Close()
	cfg := testConfig(url)
	c := newClient(t, cfg)
	_, err := c.Ask(context.Background(), question(pvq(t), values.Benevolence, 0, 0))
	// Nothing has ever answered at the address: no retry, and the error
	// names the address and the cause.
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), url+"/v1/chat/completions") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("got %v, want a permanent error naming %s and the refused connection", err, url)
	}
	if st := c.Stats(); st.Retries != 0 {
		t.Errorf("got %d retries, want 0", st.Retries)
	}
}

func TestClientBreaker(t *testing.T) {
	in := pvq(t)
	var mu sync.Mutex
	healthy := false
	srv := newOpenAIServer(t, func(r seenReq) (int, any) {
		mu.Lock()
		defer mu.Unlock()
		if !healthy {
			return 500, apiError("down")
		}
		return 200, textsReply(r, "2")
	})
	cfg := testConfig(srv.URL)
	cfg.MaxRetries = -1 // one attempt per request: failures are easy to count
	cfg.BreakerThreshold, cfg.BreakerCooldown = 3, time.Second
	c := newClient(t, cfg)
	// The breaker reads the client's clock: a clock that moves only when
	// the test says makes "still open" and "cooled down" independent of
	// how fast the machine runs the requests.
	start := time.Now()
	var elapsed atomic.Int64
	c.doer.now = func() time.Time { return start.Add(time.Duration(elapsed.Load())) }
	ask := func(sample int) error {
		_, err := c.Ask(context.Background(), question(in, values.Conformity, 6, sample))
		return err
	}
	for i := range 3 {
		if err := ask(i); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("request %d: got %v, want ErrUnavailable", i, err)
		}
	}
	// Open: requests fail without reaching the server.
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ask(10 + i); !errors.Is(err, ErrUnavailable) {
				t.Errorf("request while open: got %v, want ErrUnavailable", err)
			}
		}()
	}
	wg.Wait()
	if got := srv.calls.Load(); got != 3 {
		t.Fatalf("server saw %d requests, want 3 (none while the breaker is open)", got)
	}

	mu.Lock()
	healthy = true
	mu.Unlock()
	elapsed.Add(int64(cfg.BreakerCooldown + time.Millisecond))
	// Half-open: one probe goes through, succeeds, and closes the breaker.
	for i := range 5 {
		if err := ask(100 + i); err != nil {
			t.Fatalf("request after the cool-down: %v", err)
		}
	}
	if got := srv.calls.Load(); got != 8 {
		t.Errorf("server saw %d requests, want 8", got)
	}
}

// TestClientTimeoutAndCancel runs on the synctest clock against a server
// that takes 5 s: attempts time out at the configured 50 ms, and a caller
// that gives up while its request is at the server (an event the handler
// signals, not a guess of how long sending takes) ends it without retries.
func TestClientTimeoutAndCancel(t *testing.T) {
	in := pvq(t)
	t.Run("timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			srv := newPipeOpenAIServer(t, func(r seenReq) (int, any) {
				r.wait(5 * time.Second)
				return 200, textsReply(r, "3")
			})
			cfg := testConfig(srv.URL)
			cfg.Timeout, cfg.MaxRetries = 50*time.Millisecond, 1
			c := pipeClient(t, srv, cfg)
			start := time.Now()
			_, err := c.Ask(context.Background(), question(in, values.Stimulation, 5, 0))
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "timed out") {
				t.Errorf("got %v, want ErrUnavailable after timed-out attempts", err)
			}
			if got := srv.calls.Load(); got != 2 {
				t.Errorf("server saw %d attempts, want 2", got)
			}
			if elapsed := time.Since(start); elapsed >= time.Second {
				t.Errorf("the request failed after %v on the test clock, want two 50 ms attempts and a short backoff", elapsed)
			}
		})
	})
	t.Run("cancel", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		srv := newOpenAIServer(t, func(r seenReq) (int, any) {
			arrived <- struct{}{}
			<-r.Ctx.Done()
			return 200, textsReply(r, "3")
		})
		c := newClient(t, testConfig(srv.URL))
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-arrived
			cancel()
		}()
		_, err := c.Ask(ctx, question(in, values.Stimulation, 5, 1))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
		if st := c.Stats(); st.Retries != 0 {
			t.Errorf("got %d retries after cancellation, want 0", st.Retries)
		}
		if got := srv.calls.Load(); got != 1 {
			t.Errorf("server saw %d requests, want 1", got)
		}
	})
}
