package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStartEndpoint: the endpoint every role starts serves the program's
// metrics with the Go runtime's and the process's, says where, outlives
// its context's cancellation (an interrupted run is still scraped) and
// stops on Close.
func TestStartEndpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var log bytes.Buffer
	e, err := StartEndpoint(ctx, ":0", BuildInfo{Version: "v-test"}, &log)
	if err != nil {
		t.Fatal(err)
	}
	url := endpointURL(t, &log)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Errorf("address: got %s, want loopback for :0", url)
	}
	if e.Metrics() == nil {
		t.Fatal("Metrics: got nil, want the endpoint's")
	}
	e.Metrics().Run(RunInfo{ID: "r-1"})
	cancel()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape after the context ended: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`society_build_info{`, `version="v-test"`, `society_run_info{run="r-1"`, "go_goroutines ", "process_cpu_seconds_total "} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("scrape: got no %s", want)
		}
	}
	if err := e.Close(); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("scrape after Close: got status %d, want no connection", resp.StatusCode)
	}
}

// endpointURL reads the endpoint's URL from what StartEndpoint said.
func endpointURL(t *testing.T, log *bytes.Buffer) string {
	t.Helper()
	line := log.String()
	_, url, ok := strings.Cut(line, ` level=INFO msg="serving metrics" url=`)
	if !ok || !strings.HasPrefix(line, "time=") || !strings.HasSuffix(url, "/metrics\n") {
		t.Fatalf("log: got %q, want time=… level=INFO msg=\"serving metrics\" url=http://ADDR/metrics", line)
	}
	return strings.TrimSuffix(url, "\n")
}

func TestStartEndpointAddress(t *testing.T) {
	var log bytes.Buffer
	e, err := StartEndpoint(t.Context(), "", BuildInfo{}, &log)
	if e != nil || err != nil || log.Len() != 0 {
		t.Errorf("no address: got %v, %v, %q; want nothing started", e, err, log.String())
	}
	// A nil endpoint does nothing.
	if e.Metrics() != nil || e.Close() != nil {
		t.Error("nil endpoint: got metrics or an error, want neither")
	}
	e.Linger(t.Context(), time.Hour, &log)
	if log.Len() != 0 {
		t.Errorf("nil endpoint linger: got %q, want nothing said", log.String())
	}
	for _, addr := range []string{"localhost", "127.0.0.1"} {
		if e, err := StartEndpoint(t.Context(), addr, BuildInfo{}, &log); !errors.Is(err, ErrAddress) {
			e.Close()
			t.Errorf("%q: got %v, want ErrAddress", addr, err)
		}
	}
}

// TestLinger: the endpoint lingers until its time is up or the context
// ends, and says so first; no time means no linger.
func TestLinger(t *testing.T) {
	var start bytes.Buffer
	e, err := StartEndpoint(t.Context(), "127.0.0.1:0", BuildInfo{}, &start)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	url := endpointURL(t, &start)
	var log bytes.Buffer
	e.Linger(t.Context(), 0, &log)
	if log.Len() != 0 {
		t.Errorf("no linger: got %q, want nothing said", log.String())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	e.Linger(ctx, time.Hour, &log) // returns at once: ctx is done
	want := ` level=INFO msg="serving final metrics a while longer (interrupt to stop)" url=` + url + " for=1h0m0s\n"
	if !strings.HasSuffix(log.String(), want) {
		t.Errorf("log: got %q, want %q", log.String(), want)
	}
}
