package llm

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/society-sim/society/values"
)

func TestServerMessage(t *testing.T) {
	long := strings.Repeat("x", 2*maxMessage)
	tests := []struct {
		name, ctype, body, want, kind string
	}{
		{"openai", "application/json",
			`{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`,
			"You exceeded your current quota, please check your plan and billing details.", "insufficient_quota insufficient_quota"},
		{"ollama string", "application/json", `{"error":"model requires more system memory (7.5 GiB) than is available (5.2 GiB)"}`,
			"model requires more system memory (7.5 GiB) than is available (5.2 GiB)", ""},
		{"vllm object", "application/json",
			`{"object":"error","message":"The model ` + "`fake-8b`" + ` does not exist.","type":"NotFoundError","param":null,"code":404}`,
			"The model `fake-8b` does not exist.", "NotFoundError"},
		{"fastapi detail", "application/json", `{"detail":[{"loc":["body","n"],"msg":"Input should be less than or equal to 1","type":"less_than_equal"}]}`,
			"Input should be less than or equal to 1", ""},
		{"plain text", "text/plain", "upstream connect error\n\tor disconnect\r\n", "upstream connect error or disconnect", ""},
		{"html", "text/html", "<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>", "502 Bad Gateway", ""},
		{"bounded", "text/plain", long, strings.Repeat("x", maxMessage) + "…", ""},
		{"control characters", "text/plain", "bad\x00\x1b[31mthing\xff", "bad [31mthing", ""},
		{"empty", "application/json", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, kind := serverMessage(tt.ctype, []byte(tt.body))
			if got != tt.want || kind != tt.kind {
				t.Errorf("got %q (kind %q), want %q (kind %q)", got, kind, tt.want, tt.kind)
			}
		})
	}
}

// TestClientPermanentFailures sends requests to servers that refuse them
// for good, in the shapes real servers use: none is retried, the error
// carries the server's own message, and a refusal that concerns the whole
// endpoint fails the next requests without sending them.
func TestClientPermanentFailures(t *testing.T) {
	in := pvq(t)
	tests := []struct {
		name     string
		status   int
		body     string
		want     string
		endpoint bool // later requests fail without being sent
	}{
		{"quota", 429, `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`,
			"status 429: You exceeded your current quota, please check your plan and billing details.", true},
		{"billing spelled otherwise", 429, `{"error":"Your credit balance is too low to access the API. Please go to Plans & Billing."}`,
			"credit balance is too low", true},
		{"payment required", 402, `{"error":{"message":"Insufficient credits"}}`, "status 402: Insufficient credits", true},
		{"unauthorized", 401, `{"error":{"message":"Incorrect API key provided: sk-abc***xyz.","type":"invalid_request_error","code":"invalid_api_key"}}`,
			"status 401: Incorrect API key provided", true},
		{"forbidden", 403, `Forbidden`, "status 403: Forbidden", true},
		{"ollama unknown model", 404, `{"error":{"message":"model 'no-such-model' not found","type":"not_found_error","param":null,"code":null}}`,
			"status 404: model 'no-such-model' not found", true},
		{"parameter", 400, `{"object":"error","message":"temperature must be non-negative, got -1.","type":"BadRequestError","param":null,"code":400}`,
			"status 400: temperature must be non-negative, got -1.", false},
		{"500 out of memory", 500, `{"error":"model requires more system memory (7.5 GiB) than is available (5.2 GiB)"}`,
			"status 500: model requires more system memory (7.5 GiB) than is available (5.2 GiB)", true},
		{"not implemented", 501, `<html><body><h1>Error response</h1><p>Error code: 501</p><p>Message: Unsupported method ('POST').</p></body></html>`,
			"status 501", true},
		{"error in 200", 200, `{"object":"error","message":"The model ` + "`fake-8b`" + ` does not exist.","type":"NotFoundError","param":null,"code":404}`,
			"status 404: The model `fake-8b` does not exist.", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newOpenAIServer(t, func(r seenReq) (int, any) { return tt.status, tt.body })
			cfg := testConfig(srv.URL)
			cfg.Samples = 4
			c := newClient(t, cfg)
			_, err := c.Ask(context.Background(), question(in, values.Power, 3, 0))
			if !errors.Is(err, ErrPermanent) {
				t.Fatalf("got %v, want a permanent failure", err)
			}
			var re *RequestError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), srv.URL+"/v1/chat/completions") {
				t.Fatalf("got %q, want a *RequestError naming the URL and %q", err, tt.want)
			}
			if got := srv.calls.Load(); got != 1 {
				t.Errorf("server saw %d requests, want 1 (no retries)", got)
			}
			if st := c.Stats(); st.Retries != 0 || st.Failures != 1 {
				t.Errorf("got %d retries and %d failures, want 0 and 1", st.Retries, st.Failures)
			}
			_, err = c.Ask(context.Background(), question(in, values.Power, 4, 0))
			if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("second request: got %v, want the same failure", err)
			}
			want := int64(2)
			if tt.endpoint {
				want = 1
			}
			if got := srv.calls.Load(); got != want {
				t.Errorf("after a second request the server saw %d requests, want %d", got, want)
			}
		})
	}
}

// TestClientTransientFailureNamesCause checks that retryable failures are
// retried, and that the error after the last retry carries the server's
// message rather than only the count of attempts.
func TestClientTransientFailureNamesCause(t *testing.T) {
	in := pvq(t)
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"rate limit", 429, `{"error":{"message":"Rate limit reached for requests per min (RPM): Limit 3, Used 3.","type":"requests","code":"rate_limit_exceeded"}}`,
			"status 429: Rate limit reached for requests per min"},
		{"per-minute quota", 429, `{"error":{"code":429,"message":"Quota exceeded for quota metric 'Generate Content API requests per minute'.","status":"RESOURCE_EXHAUSTED"}}`,
			"Quota exceeded for quota metric"},
		{"overloaded", 503, `{"error":"server busy, please try again. maximum pending requests exceeded"}`, "status 503: server busy"},
		{"proxy page", 502, `<html><head><title>502 Bad Gateway</title></head></html>`, "status 502: 502 Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newOpenAIServer(t, func(r seenReq) (int, any) { return tt.status, tt.body })
			cfg := testConfig(srv.URL)
			cfg.MaxRetries = 2
			c := newClient(t, cfg)
			_, err := c.Ask(context.Background(), question(in, values.Tradition, 1, 0))
			if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrUnavailable naming %q", err, tt.want)
			}
			if got := srv.calls.Load(); got != 3 {
				t.Errorf("server saw %d requests, want 3", got)
			}
		})
	}
}

func TestClientTLSFailure(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	// The test server's certificate is signed by no authority the client
	// trusts: that does not change by trying again.
	c := newClient(t, testConfig(srv.URL))
	_, err := c.Ask(context.Background(), question(pvq(t), values.Security, 0, 0))
	if !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "TLS failed") || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("got %v, want a permanent TLS failure naming %s", err, srv.URL)
	}
	if st := c.Stats(); st.Retries != 0 {
		t.Errorf("got %d retries, want 0", st.Retries)
	}
}

// TestClientRefusedAfterAnswers checks that a server that answered once
// and then refuses connections (restarting) is retried, not given up.
func TestClientRefusedAfterAnswers(t *testing.T) {
	srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 200, textsReply(r, "3") })
	c := newClient(t, testConfig(srv.URL))
	in := pvq(t)
	if _, err := c.Ask(context.Background(), question(in, values.Security, 0, 0)); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	_, err := c.Ask(context.Background(), question(in, values.Security, 1, 0))
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("got %v, want ErrUnavailable naming the refused connection", err)
	}
	if st := c.Stats(); st.Retries != int64(DefaultMaxRetries) {
		t.Errorf("got %d retries, want %d", st.Retries, DefaultMaxRetries)
	}
}

// TestClientAdaptsToStatedLimits answers as servers do that take one
// choice per request or cap the top log-probabilities: the client keeps to
// the limit from then on, and the answers come through.
func TestClientAdaptsToStatedLimits(t *testing.T) {
	in := pvq(t)
	t.Run("n", func(t *testing.T) {
		var mu sync.Mutex
		refused := 0
		srv := newOpenAIServer(t, func(r seenReq) (int, any) {
			if r.n() > 1 {
				mu.Lock()
				refused++
				mu.Unlock()
				return 400, `{"error":{"code":400,"message":"Only one completion choice is allowed","type":"invalid_request_error"}}`
			}
			return 200, textsReply(r, "4")
		})
		cfg := testConfig(srv.URL)
		cfg.Samples = 3
		c := newClient(t, cfg)
		for i := range 6 {
			r, err := c.Ask(context.Background(), question(in, values.Universalism, 2, i))
			if err != nil {
				t.Fatal(err)
			}
			if !r.Answer.Valid || r.Answer.Value != 4 {
				t.Fatalf("sample %d: got %+v, want a valid 4", i, r.Answer)
			}
		}
		if refused != 1 {
			t.Errorf("server refused %d requests, want 1 (later ones keep to n = 1)", refused)
		}
	})
	t.Run("top_logprobs", func(t *testing.T) {
		var mu sync.Mutex
		var asked []float64
		srv := newOpenAIServer(t, func(r seenReq) (int, any) {
			k, _ := r.num("top_logprobs")
			mu.Lock()
			asked = append(asked, k)
			mu.Unlock()
			if k > 5 {
				return 400, `{"object":"error","message":"Requested sample logprobs of 20, which is greater than max allowed: 5","type":"BadRequestError","param":null,"code":400}`
			}
			return 200, topReply(r, map[string]float64{"3": 0.5, "4": 0.3, "5": 0.2})
		})
		cfg := testConfig(srv.URL)
		cfg.Mode = ModeDistribution
		c := newClient(t, cfg)
		for item := range 3 {
			r, err := c.Ask(context.Background(), question(in, values.Hedonism, item, 0))
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Dist) != 6 || r.Dist[2] < 0.49 || r.Dist[2] > 0.51 {
				t.Fatalf("item %d: got %v, want the server's distribution", item, r.Dist)
			}
		}
		want := []float64{20, 5, 5, 5}
		if len(asked) != len(want) {
			t.Fatalf("top_logprobs asked: got %v, want %v", asked, want)
		}
		for i := range want {
			if asked[i] != want[i] {
				t.Fatalf("top_logprobs asked: got %v, want %v", asked, want)
			}
		}
	})
}

func TestAdaptationsLearn(t *testing.T) {
	tests := []struct {
		name, path, body, msg string
		wantN, wantTop        int64
	}{
		{"vllm cap", "/v1/chat/completions", `{"top_logprobs":20,"logprobs":true}`, "Requested sample logprobs of 20, which is greater than max allowed: 5", 0, 5},
		{"openai cap", "/v1/chat/completions", `{"top_logprobs":25}`, "Invalid 'top_logprobs': integer above maximum value. Expected a value <= 20, but got 25 instead.", 0, 20},
		{"between", "/v1/completions", `{"logprobs":20}`, "logprobs must be between 0 and 5", 0, 5},
		{"cap above the request", "/v1/chat/completions", `{"top_logprobs":5}`, "max allowed: 10 top logprobs", 0, 0},
		{"groq n", "/v1/chat/completions", `{"n":4}`, "'n' : number must be at most 1", 1, 0},
		{"vllm greedy", "/v1/chat/completions", `{"n":2}`, "n must be 1 when using greedy sampling, got 2.", 1, 0},
		{"n already 1", "/v1/chat/completions", `{"n":1}`, "n must be 1", 0, 0},
		{"unrelated", "/v1/chat/completions", `{"n":4}`, "This model's maximum context length is 4096 tokens.", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a adaptations
			a.learn(&RequestError{Status: 400, Message: tt.msg}, tt.path, []byte(tt.body))
			if n, top := a.maxN.Load(), a.maxTopLogprobs.Load(); n != tt.wantN || top != tt.wantTop {
				t.Errorf("got n ≤ %d, top ≤ %d; want %d, %d", n, top, tt.wantN, tt.wantTop)
			}
		})
	}
}

// TestClientLogsRetryableFailures checks that failures are logged while
// they happen, a bounded number of lines however many fail.
func TestClientLogsRetryableFailures(t *testing.T) {
	srv := newOpenAIServer(t, func(r seenReq) (int, any) { return 500, `{"error":"CUDA error: an illegal memory access"}` })
	var buf syncBuffer
	cfg := testConfig(srv.URL)
	cfg.MaxRetries = 3
	cfg.Logger = newTestLogger(&buf)
	c := newClient(t, cfg)
	for i := range 5 {
		c.Ask(context.Background(), question(pvq(t), values.SelfDirection, i, 0))
	}
	out := buf.String()
	if got := strings.Count(out, "model request failed"); got != 1 {
		t.Errorf("got %d log lines about failures, want 1 within %v:\n%s", got, failureLogEvery, out)
	}
	if !strings.Contains(out, "CUDA error: an illegal memory access") {
		t.Errorf("log does not carry the server's message:\n%s", out)
	}
}

func newTestLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}

// syncBuffer is a strings.Builder safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTransportError(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "http://user:secret@models.example.org:8000/v1/chat/completions?key=k", nil)
	wrap := func(err error) error { return &url.Error{Op: "Post", URL: req.URL.String(), Err: err} }
	dns := &net.DNSError{Err: "no such host", Name: "models.example.org", IsNotFound: true}
	tests := []struct {
		name      string
		err       error
		answered  bool
		want      string
		permanent bool
		overload  bool
	}{
		{"refused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), false,
			"POST http://models.example.org:8000/v1/chat/completions: connection refused (dial tcp: connect: connection refused)", true, false},
		{"refused after answers", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), true,
			"connection refused", false, false},
		{"dns", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: dns}), false,
			"host not found (dial tcp: lookup models.example.org: no such host)", true, false},
		{"dns temporary", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}}), false,
			"host not found", false, false},
		{"tls", wrap(x509.UnknownAuthorityError{}), false, "TLS failed (x509: certificate signed by unknown authority)", true, false},
		{"timeout", wrap(context.DeadlineExceeded), false, "attempt timed out after 2s", false, true},
		{"reset", wrap(errors.New("read: connection reset by peer")), false, "connection reset by peer", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := transportError(context.Background(), req, tt.err, tt.answered, "2s")
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("got %T %v, want a *RequestError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) || re.Permanent != tt.permanent || re.Overload != tt.overload {
				t.Errorf("got %q (permanent %v, overload %v), want %q (%v, %v)", err, re.Permanent, re.Overload, tt.want, tt.permanent, tt.overload)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "key=k") {
				t.Errorf("credentials in %q", err)
			}
		})
	}
}
