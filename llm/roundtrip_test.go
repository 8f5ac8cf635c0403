package llm

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/society-sim/society/values"
)

// TestRedirectFollowed: the request path sends through the transport
// without http.Client.Do, and a server that redirects the request (307,
// as a proxy or a moved endpoint does) still gets it at the new address
// with its body, as http.Client.Do followed redirects.
func TestRedirectFollowed(t *testing.T) {
	var redirected, served atomic.Int64
	var body atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/chat/completions":
			redirected.Add(1)
			io.Copy(io.Discard, r.Body)
			http.Redirect(w, r, "/v2/chat/completions", http.StatusTemporaryRedirect)
		case "/v2/chat/completions":
			served.Add(1)
			b, _ := io.ReadAll(r.Body)
			body.Store(string(b))
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"model":"test-model","choices":[{"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := newClient(t, testConfig(srv.URL))
	// The first request goes to the redirect twice (through the
	// transport, then through http.Client.Do), later ones once.
	for i, want := range []int64{2, 3} {
		r, err := c.Ask(context.Background(), question(pvq(t), values.Power, 0, i))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Answer.Valid || r.Answer.Value != 4 {
			t.Errorf("answer %+v, want 4", r.Answer)
		}
		if redirected.Load() != want || served.Load() != int64(i+1) {
			t.Errorf("after Ask %d: %d requests redirected, %d served; want %d and %d", i, redirected.Load(), served.Load(), want, i+1)
		}
	}
	if b, _ := body.Load().(string); !strings.Contains(b, `"messages"`) {
		t.Errorf("redirected request's body %q", b)
	}
}

// TestRoundTripErrorWrapped: a failure of the connection is named as
// before, with the method and URL once.
func TestRoundTripErrorWrapped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL
	srv.Close()
	cfg := testConfig(url)
	cfg.MaxRetries = -1
	c := newClient(t, cfg)
	_, err := c.Ask(context.Background(), question(pvq(t), values.Power, 0, 0))
	if err == nil {
		t.Fatal("no error from a closed server")
	}
	msg := err.Error()
	if strings.Count(msg, url) != 1 || !strings.Contains(msg, "connection refused") || strings.Contains(msg, "Post ") {
		t.Errorf("error %q: want the URL once and the cause", msg)
	}
}
