// Package promtest runs a real Prometheus server on the loopback interface
// for tests, like httptest does for HTTP: tests of the metrics and of the
// dashboard query what a real server stored, not what we think it stores.
//
// The server is the prometheus binary on the machine (/usr/bin/prometheus
// from Debian's package, or the first on PATH). Without one a test is
// skipped, except when the environment variable CI is "true": there a
// missing server fails the test, so that CI cannot pass by skipping.
//
// It imports only the standard library: it talks to Prometheus over HTTP,
// never through client_golang or the metrics it checks.
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a running Prometheus.
type Server struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:40123.
	URL string

	cmd *exec.Cmd
	log *syncBuffer
}

// Binary returns the path of the prometheus binary, or "" when there is
// none.
func Binary() string {
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	return ""
}

// Require returns the prometheus binary's path. Without one it skips the
// test, or fails it when CI is "true".
func Require(t testing.TB) string {
	t.Helper()
	bin := Binary()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus binary not found: CI must install it (.ci/run installs Debian's prometheus package)")
		}
		t.Skip("prometheus binary not found; install it with: apt-get install prometheus")
	}
	return bin
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for servers that must be told their address before they start.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Start runs Prometheus with config (a prometheus.yml) and native
// histograms enabled, storing its data in a temporary directory, and stops
// it when the test ends. It returns once the server is ready.
func Start(t testing.TB, config string) *Server {
	t.Helper()
	bin := Require(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	s := &Server{URL: "http://" + addr, log: &syncBuffer{}}
	s.cmd = exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--enable-feature=native-histograms",
		"--log.level=info", // for the line saying it is ready
	)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		s.cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", s.log.String())
		}
	})
	// Ready when it says so, however long a busy machine takes; the
	// test's own deadline (go test -timeout) bounds the wait.
	for {
		log, grew := s.log.next()
		if strings.Contains(log, readyLine) {
			return s
		}
		select {
		case <-grew:
		case <-exited:
			t.Fatalf("prometheus exited before it was ready:\n%s", s.log.String())
		case <-t.Context().Done():
			t.Fatalf("prometheus not ready when the test ended:\n%s", s.log.String())
		}
	}
}

// readyLine is what Prometheus logs once it answers queries.
const readyLine = "Server is ready to receive web requests."

// Series is one series of a query result.
type Series struct {
	Metric map[string]string
	// Points counts the samples, floats and native histograms alike.
	Points int
	// Last is the last float sample (NaN when the series holds only
	// histograms).
	Last float64
}

// Query evaluates expr at time at (an instant query).
func (s *Server) Query(ctx context.Context, expr string, at time.Time) ([]Series, error) {
	v := url.Values{"query": {expr}, "time": {unix(at)}}
	return s.get(ctx, "/api/v1/query", v)
}

// QueryRange evaluates expr from start to end every step.
func (s *Server) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Series, error) {
	v := url.Values{"query": {expr}, "start": {unix(start)}, "end": {unix(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	return s.get(ctx, "/api/v1/query_range", v)
}

func unix(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', 3, 64)
}

// apiResponse is the part of Prometheus's HTTP API answer we read.
type apiResponse struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric     map[string]string `json:"metric"`
			Value      []any             `json:"value"`
			Values     [][]any           `json:"values"`
			Histogram  []any             `json:"histogram"`
			Histograms [][]any           `json:"histograms"`
		} `json:"result"`
	} `json:"data"`
}

func (s *Server) get(ctx context.Context, path string, v url.Values) ([]Series, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path+"?"+v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r apiResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %q: %s: %w", v.Get("query"), resp.Status, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", v.Get("query"), r.Error)
	}
	out := make([]Series, 0, len(r.Data.Result))
	for _, res := range r.Data.Result {
		se := Series{Metric: res.Metric, Last: math.NaN()}
		points := res.Values
		if res.Value != nil {
			points = append(points, res.Value)
		}
		for _, p := range points {
			if len(p) == 2 {
				if str, ok := p[1].(string); ok {
					if f, err := strconv.ParseFloat(str, 64); err == nil {
						se.Last = f
					}
				}
				se.Points++
			}
		}
		se.Points += len(res.Histograms)
		if res.Histogram != nil {
			se.Points++
		}
		out = append(out, se)
	}
	return out, nil
}

// syncBuffer collects the server's log from its output goroutines and
// wakes whoever waits for a line in it.
type syncBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	grew chan struct{} // closed at the next write; nil when nobody waits
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.grew != nil {
		close(b.grew)
		b.grew = nil
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// next returns the log so far and a channel closed at the next write.
func (b *syncBuffer) next() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.grew == nil {
		b.grew = make(chan struct{})
	}
	return b.b.String(), b.grew
}
