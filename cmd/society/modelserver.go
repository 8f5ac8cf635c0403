package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
)

const modelServerSynopsis = `model-server [--addr HOST:PORT] [--latency D] [--slots N] [--error-rate F]
                     [--garbage-rate F] [--timeout-rate F] [--seed N] [--models A,B] [--public]

Serves the built-in synthetic respondents (not a language model) over the
OpenAI HTTP API (/v1/chat/completions, /v1/completions, /v1/models[/ID], /health),
with injectable latency, errors, unreadable answers and hung requests, for
tests, benchmarks and dry runs without a GPU. Point a scenario's base_url at
http://HOST:PORT/v1.`

// cmdModelServer runs "society model-server" until ctx is done.
func cmdModelServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("model-server", modelServerSynopsis, stderr)
	f := modelserver.AddFlags(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	var problems []error
	if len(pos) > 0 {
		problems = append(problems, fmt.Errorf("takes no arguments, got %q", strings.Join(pos, " ")))
	}
	if err := f.Check(); err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: model-server: %w", errUsage, errors.Join(problems...))
	}

	means, err := population.HumanMeans(syntheticMeans)
	if err != nil {
		return fmt.Errorf("model-server: %w", err)
	}
	o := f.Options()
	h := modelserver.New(llm.NewSynthetic(o.Seed, means), o)
	ln, err := net.Listen("tcp", f.Addr)
	if err != nil {
		return fmt.Errorf("model-server: listen %s: %w", f.Addr, err)
	}
	fmt.Fprintf(stdout, "society model-server: synthetic respondents (not a language model) on http://%s/v1\n", ln.Addr())
	if err := modelserver.Serve(ctx, ln, h); err != nil {
		return fmt.Errorf("model-server: %w", err)
	}
	roleLogger(stderr, false).Info("model server stopped", h.Stats().Attrs()...)
	return nil
}
