package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/metrics"
	"github.com/society-sim/society/sim"
)

// metricsServer is a running /metrics endpoint. Every role (run, agents,
// analyze) starts one the same way with startMetrics.
type metricsServer struct {
	Metrics *metrics.Metrics
	Addr    net.Addr

	cancel context.CancelFunc
	done   chan error
}

// startMetrics serves the program's metrics on addr (host:port; a bare
// :port binds 127.0.0.1) until close is called. An empty addr starts
// nothing and returns nil, whose methods do nothing.
func startMetrics(ctx context.Context, addr string, stderr io.Writer) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("%w: --metrics %q: want HOST:PORT or :PORT", errUsage, addr)
	}
	ln, err := metrics.Listen(addr)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &metricsServer{Metrics: metrics.New(reg, buildInfo()), Addr: ln.Addr(), done: make(chan error, 1)}
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go func() { s.done <- metrics.Serve(ctx, ln, reg) }()
	fmt.Fprintf(stderr, "society: metrics on http://%s/metrics\n", s.Addr)
	return s, nil
}

// close stops the server and waits for it.
func (s *metricsServer) close() error {
	if s == nil {
		return nil
	}
	s.cancel()
	return <-s.done
}

// linger keeps serving for d (or until ctx is done), so that a scrape after
// the work is over still sees the final values.
func (s *metricsServer) linger(ctx context.Context, d time.Duration, stderr io.Writer) {
	if s == nil || d <= 0 {
		return
	}
	fmt.Fprintf(stderr, "society: serving final metrics on http://%s/metrics for %s (interrupt to stop)\n", s.Addr, d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func buildInfo() metrics.BuildInfo {
	v := programVersion()
	return metrics.BuildInfo{Version: v.Version, Revision: v.Revision, GoVersion: v.GoVersion}
}

// runMetrics follows one run for the metrics endpoint: the live figures
// (metrics.Live, the run's observer) refreshed while the run lasts. A nil
// *runMetrics (no --metrics) does nothing.
type runMetrics struct {
	srv  *metricsServer
	live *metrics.Live

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// liveEvery is how often the values similarity so far and the NATS backlog
// are refreshed: a few seconds is live enough for a dashboard and keeps
// the cost of the sample negligible beside the run.
const liveEvery = 2 * time.Second

// startRunMetrics starts the endpoint on addr (none when addr is empty) and
// the run's live figures.
func startRunMetrics(ctx context.Context, addr string, stderr io.Writer) (*runMetrics, error) {
	srv, err := startMetrics(ctx, addr, stderr)
	if err != nil || srv == nil {
		return nil, err
	}
	r := &runMetrics{srv: srv, live: metrics.NewLive(srv.Metrics, metrics.LiveSampleMax)}
	var lctx context.Context
	lctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.live.Run(lctx, liveEvery)
	}()
	return r, nil
}

// wire makes cfg's run report to the metrics.
func (r *runMetrics) wire(cfg *runConfig) {
	if r == nil {
		return
	}
	cfg.Observer, cfg.Model, cfg.BadMessage = r.live, r.srv.Metrics, r.srv.Metrics.BadMessage
}

// wireDist makes a distributed run's orchestrator report to the metrics:
// its phases, the answers it follows and their backlog.
func (r *runMetrics) wireDist(cfg *distConfig) {
	if r == nil {
		return
	}
	cfg.Observer, cfg.BadMessage = r.live, r.srv.Metrics.BadMessage
}

// finish stops the live figures and publishes the run's final ones: every
// agent finished and, when the run succeeded (out not nil), the
// similarities of results.json for the whole population.
func (r *runMetrics) finish(out *analysis.Outcome) {
	if r == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
	r.live.Finish(out)
}

// linger keeps serving after the run (see metricsServer.linger).
func (r *runMetrics) linger(ctx context.Context, d time.Duration, stderr io.Writer) {
	if r != nil {
		r.srv.linger(ctx, d, stderr)
	}
}

// close stops the endpoint.
func (r *runMetrics) close() error {
	if r == nil {
		return nil
	}
	r.finish(nil) // no-op after a finish; stops the live figures otherwise
	return r.srv.close()
}

var _ llm.Observer = (*metrics.Metrics)(nil)

// modelObserver is the model clients' observer for m: none without
// --metrics.
func modelObserver(m *metrics.Metrics) llm.Observer {
	if m == nil {
		return nil
	}
	return m
}

// metricsOf returns the server's metrics (nil without --metrics).
func (s *metricsServer) metricsOf() *metrics.Metrics {
	if s == nil {
		return nil
	}
	return s.Metrics
}

// followRun follows a run whose answers this process reads but whose
// loop runs elsewhere (the analysis service): the same live figures as
// the orchestrator's, fed by the answers as they are stored (sink). It
// returns nil, which does nothing, when m is nil. finish stops it.
func followRun(ctx context.Context, m *metrics.Metrics, lay sim.Layout) *runMetrics {
	if m == nil {
		return nil
	}
	r := &runMetrics{live: metrics.NewLive(m, metrics.LiveSampleMax).FollowAnswers()}
	r.live.Start(lay)
	var lctx context.Context
	lctx, r.cancel = context.WithCancel(ctx)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.live.Run(lctx, liveEvery)
	}()
	return r
}

// sink stores answer batches in col and, when following a run, counts
// them for the metrics once col holds them.
func (r *runMetrics) sink(col *analysis.Collector) func(*agent.Batch) error {
	if r == nil {
		return col.Add
	}
	return func(b *agent.Batch) error {
		if err := col.Add(b); err != nil {
			return err
		}
		e, v, i := col.Counts()
		r.live.Batch(b, sim.Counts{Expected: e, Valid: v, Invalid: i})
		return nil
	}
}
