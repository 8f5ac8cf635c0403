package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunStopsOnPermanentFailure runs a scenario against endpoints that
// cannot serve it: the run exits 1 at once with the URL and the server's
// own message (or the cause), after few requests, never after minutes of
// retries.
func TestRunStopsOnPermanentFailure(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		models bool // GET /v1/models answers normally
		want   []string
	}{
		{"quota", 429, `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`,
			true, []string{"status 429: You exceeded your current quota, please check your plan and billing details."}},
		{"unauthorized", 401, `{"error":{"message":"Incorrect API key provided: sk-abc***xyz.","type":"invalid_request_error","code":"invalid_api_key"}}`,
			false, []string{"GET ", "/v1/models: status 401: Incorrect API key provided"}},
		{"unknown model", 404, `{"error":{"message":"model 'no-such-model' not found","type":"not_found_error","param":null,"code":null}}`,
			true, []string{"status 404: model 'no-such-model' not found"}},
		{"out of memory", 500, `{"error":"model requires more system memory (7.5 GiB) than is available (5.2 GiB)"}`,
			true, []string{"status 500: model requires more system memory (7.5 GiB) than is available (5.2 GiB)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if r.URL.Path == "/v1/models" && tt.models {
					io.WriteString(w, `{"object":"list","data":[{"id":"synthetic-respondents"}]}`)
					return
				}
				calls.Add(1)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(hs.Close)
			dir := t.TempDir()
			sc := writeScenario(t, dir, "fail", openaiScenario("fail", hs.URL, "sample", 20, "")+"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n")
			start := time.Now()
			_, stderr, code := runCLI(t, "run", sc, "--out", filepath.Join(dir, "out"), "--cache", filepath.Join(dir, "cache"))
			t.Logf("failed in %v after %d requests", time.Since(start), calls.Load())
			if code != 1 {
				t.Fatalf("got exit %d, want 1: %s", code, stderr)
			}
			for _, want := range append(tt.want, hs.URL+"/v1/") {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if tt.models && !strings.Contains(stderr, "level=ERROR msg=\"model endpoint cannot serve this run\"") {
				t.Errorf("the run's log does not say the endpoint cannot serve it:\n%s", stderr)
			}
			// Requests already in flight when the first failure came back
			// may fail too; none is retried.
			if got := calls.Load(); got > 32 {
				t.Errorf("server saw %d requests, want at most the concurrency, 32", got)
			}
		})
	}
}

func TestRunStopsWhenNothingListens(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close()
	dir := t.TempDir()
	sc := writeScenario(t, dir, "refused", openaiScenario("refused", url, "sample", 20, "")+"[[questionnaires]]\nname = \"pvq40\"\nitems = 12\n")
	start := time.Now()
	_, stderr, code := runCLI(t, "run", sc, "--out", filepath.Join(dir, "out"), "--cache", filepath.Join(dir, "cache"))
	t.Logf("failed in %v", time.Since(start))
	if code != 1 || !strings.Contains(stderr, url+"/v1/models") || !strings.Contains(stderr, "connection refused") {
		t.Errorf("got exit %d, %s; want exit 1 naming %s and the refused connection", code, stderr, url)
	}
}
