package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// ErrAddress is StartEndpoint's error for an address that is not
// HOST:PORT or :PORT: the user's input, not the machine.
var ErrAddress = errors.New("want HOST:PORT or :PORT")

// Endpoint is a running /metrics endpoint: the program's metrics, with the
// Go runtime's and the process's, on a registry of its own. Every role
// (run, agents, analyze) starts one the same way. A nil *Endpoint (no
// address given) does nothing.
type Endpoint struct {
	m    *Metrics
	addr net.Addr

	cancel context.CancelFunc
	done   chan error
}

// StartEndpoint serves the program's metrics on addr (HOST:PORT; a bare
// :PORT binds 127.0.0.1, see Listen) until Close, and says where on log.
// An empty addr starts nothing and returns nil; an addr without a port is
// ErrAddress. The server outlives ctx's cancellation, so that the final
// values of an interrupted run can still be scraped: Close stops it.
func StartEndpoint(ctx context.Context, addr string, build BuildInfo, log io.Writer) (*Endpoint, error) {
	if addr == "" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, ErrAddress
	}
	ln, err := Listen(addr)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	e := &Endpoint{m: New(reg, build), addr: ln.Addr(), done: make(chan error, 1)}
	ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go func() { e.done <- Serve(ctx, ln, reg) }()
	textLog(log).Info("serving metrics", "url", fmt.Sprintf("http://%s/metrics", e.addr))
	return e, nil
}

// Metrics returns the endpoint's metrics; nil for a nil *Endpoint.
func (e *Endpoint) Metrics() *Metrics {
	if e == nil {
		return nil
	}
	return e.m
}

// Close stops the server and waits for it.
func (e *Endpoint) Close() error {
	if e == nil {
		return nil
	}
	e.cancel()
	return <-e.done
}

// Linger keeps serving for d (or until ctx is done), so that a scrape after
// the work is over still sees the final values; it says so on log first.
func (e *Endpoint) Linger(ctx context.Context, d time.Duration, log io.Writer) {
	if e == nil || d <= 0 {
		return
	}
	textLog(log).Info("serving final metrics a while longer (interrupt to stop)", "url", fmt.Sprintf("http://%s/metrics", e.addr), "for", d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// textLog writes key=value lines to w, as the program's other log lines
// are (slog's text form).
func textLog(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
