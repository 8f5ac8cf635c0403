package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
)

const modelServerSynopsis = `model-server [--addr HOST:PORT] [--latency D] [--slots N] [--error-rate F]
                     [--garbage-rate F] [--timeout-rate F] [--seed N] [--models A,B] [--public]

Serves the built-in synthetic respondents (not a language model) over the
OpenAI HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /health),
with injectable latency, errors, unreadable answers and hung requests, for
tests, benchmarks and dry runs without a GPU. Point a scenario's base_url at
http://HOST:PORT/v1.`

// modelServerGrace is how long in-flight requests may finish after a
// shutdown signal before their connections are closed.
const modelServerGrace = 5 * time.Second

// cmdModelServer runs "society model-server" until ctx is done.
func cmdModelServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("model-server", modelServerSynopsis, stderr)
	addr := fs.String("addr", "127.0.0.1:8000", "address to listen on (loopback unless --public)")
	public := fs.Bool("public", false, "allow listening on a non-loopback address")
	latency := fs.Duration("latency", 0, "time each request holds its slot (e.g. 200ms)")
	slots := fs.Int("slots", 64, "requests served at once; the rest queue")
	errorRate := fs.Float64("error-rate", 0, "fraction of requests answered 429 or 500 (half each)")
	garbageRate := fs.Float64("garbage-rate", 0, "fraction of completions whose text is unreadable")
	timeoutRate := fs.Float64("timeout-rate", 0, "fraction of requests that hang until the client gives up")
	seed := fs.Uint64("seed", 1, "seed of the synthetic respondents and of the injected faults")
	models := fs.String("models", "", "comma-separated model names to accept (default: any)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	var problems []error
	if len(pos) > 0 {
		problems = append(problems, fmt.Errorf("model-server takes no arguments, got %q", strings.Join(pos, " ")))
	}
	if *slots < 1 {
		problems = append(problems, fmt.Errorf("--slots: must be at least 1, got %d", *slots))
	}
	if *latency < 0 {
		problems = append(problems, fmt.Errorf("--latency: must not be negative, got %v", *latency))
	}
	rates := []struct {
		name string
		v    float64
	}{{"--error-rate", *errorRate}, {"--garbage-rate", *garbageRate}, {"--timeout-rate", *timeoutRate}}
	for _, r := range rates {
		if !(r.v >= 0 && r.v <= 1) {
			problems = append(problems, fmt.Errorf("%s: must be between 0 and 1, got %v", r.name, r.v))
		}
	}
	if *errorRate+*timeoutRate > 1 {
		problems = append(problems, fmt.Errorf("--error-rate + --timeout-rate: must be at most 1, got %v", *errorRate+*timeoutRate))
	}
	if err := modelServerCheckAddr(*addr, *public); err != nil {
		problems = append(problems, err)
	}
	var names []string
	for n := range strings.SplitSeq(*models, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: model-server: %w", errUsage, errors.Join(problems...))
	}

	means, err := population.HumanMeans(syntheticMeans)
	if err != nil {
		return fmt.Errorf("model-server: %w", err)
	}
	h := modelserver.New(llm.NewSynthetic(*seed, means), modelserver.Options{
		Seed:        *seed,
		Latency:     *latency,
		Slots:       *slots,
		ErrorRate:   *errorRate,
		GarbageRate: *garbageRate,
		TimeoutRate: *timeoutRate,
		Models:      names,
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("model-server: listen %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "society model-server: synthetic respondents (not a language model) on http://%s/v1\n", ln.Addr())

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("model-server: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	// Stop intake and let requests in service finish; hung and queued
	// requests wait on their clients, so after the grace period their
	// connections are closed, which ends them.
	sctx, cancel := context.WithTimeout(context.Background(), modelServerGrace)
	err = srv.Shutdown(sctx)
	cancel()
	if err != nil {
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("model-server: serve %s: %w", ln.Addr(), err)
	}
	st := h.Stats()
	fmt.Fprintf(stderr, "society model-server: stopped after %d requests (%d served, %d errors, %d timeouts, %d garbage completions, at most %d in flight, at most %d open)\n",
		st.Requests, st.Served, st.Errors, st.Timeouts, st.Garbage, st.MaxInFlight, st.MaxOpen)
	return nil
}

// modelServerCheckAddr refuses addresses other machines could reach unless
// the user asked for it: the server answers anyone, without keys.
func modelServerCheckAddr(addr string, public bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: want HOST:PORT: %v", addr, err)
	}
	if port == "" {
		return fmt.Errorf("--addr %q: want HOST:PORT with a port", addr)
	}
	if public {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	if host == "" {
		host = "every interface"
	}
	return fmt.Errorf("--addr %q: %s is not a loopback address; add --public to serve other machines", addr, host)
}
