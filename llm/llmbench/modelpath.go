// Package llmbench measures the model path: how many calls per second an
// OpenAI-compatible client gets out of a model server with S slots and a
// latency L, against the S/L the server can give, and how many model calls
// a study's design needs in each query mode, checked against a real
// client and server. It measures the llm adapter alone and must not import
// bus, metrics or cmd; figures from it are about the program, never about
// models.
package llmbench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// ModelPath is the model path's throughput against the model server.
type ModelPath struct {
	Slots               int     `json:"slots"`
	LatencySeconds      float64 `json:"latency_seconds"`
	IdealCallsPerSecond float64 `json:"ideal_calls_per_second"`
	// Efficiency is the achieved calls/s over S/L, the most the server can
	// do, with the client's concurrency at Concurrency (by default 2·S, so
	// that a request is always waiting for the slot that frees).
	Efficiency       float64 `json:"efficiency"`
	SteadyEfficiency float64 `json:"steady_efficiency"`
	Concurrency      int     `json:"client_concurrency"`
	Runs             []Run   `json:"runs"`
	ServerCPUMicros  float64 `json:"server_cpu_us_per_call"`
	ServerRequests   int64   `json:"server_requests"`
	MaxInFlight      int64   `json:"server_max_in_flight"`
}

// Run is one timed run at one client concurrency.
type Run struct {
	Concurrency     int     `json:"client_concurrency"`
	Agents          int     `json:"agents"`
	Calls           int64   `json:"calls"`
	Seconds         float64 `json:"seconds"`
	CallsPerSecond  float64 `json:"calls_per_second"`
	Efficiency      float64 `json:"efficiency"`
	ClientCPUMicros float64 `json:"client_cpu_us_per_call"`
	Retries         int64   `json:"client_retries"`
	// Steady* leave out the run's first and last tenth of calls.
	SteadyCallsPerSecond float64 `json:"steady_calls_per_second"`
	SteadyEfficiency     float64 `json:"steady_efficiency"`
}

// Options configure a model-path measurement.
type Options struct {
	// Slots (S) and Latency (L) are the model server's, given to Server.
	Slots   int
	Latency time.Duration
	// Calls is the calls timed per client concurrency; 0 means 50·S.
	Calls int
	// Concurrency is the client's concurrency on the second run; 0 means
	// 2·S. The first run is at S.
	Concurrency int
	// Server makes the command of a model server with S slots and latency
	// L ('society model-server'): it prints its base URL (http://...) on
	// the first line of stdout, serves GET /health, and at an interrupt
	// exits after printing "stopped after N requests ... at most M in
	// flight" on stderr. It runs in a process of its own so that this
	// process's CPU time is the client's alone.
	Server func(ctx context.Context) (*exec.Cmd, error)
}

// MeasureModelPath times agents asking the model server through the
// OpenAI client, at client concurrency S and at o.Concurrency.
func MeasureModelPath(ctx context.Context, o Options) (*ModelPath, error) {
	calls := o.Calls
	if calls == 0 {
		calls = 50 * o.Slots
	}
	conc := o.Concurrency
	if conc == 0 {
		conc = 2 * o.Slots
	}
	srv, err := startModelServer(ctx, o.Server)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	mb := &ModelPath{Slots: o.Slots, LatencySeconds: o.Latency.Seconds(), IdealCallsPerSecond: float64(o.Slots) / o.Latency.Seconds(),
		Concurrency: conc}
	for _, c := range []int{o.Slots, conc} {
		if c == o.Slots && len(mb.Runs) > 0 {
			continue
		}
		r, err := modelPathAt(ctx, srv.url, c, calls)
		if err != nil {
			return nil, err
		}
		r.Efficiency = r.CallsPerSecond / mb.IdealCallsPerSecond
		r.SteadyEfficiency = r.SteadyCallsPerSecond / mb.IdealCallsPerSecond
		mb.Runs = append(mb.Runs, r)
		if c == conc {
			mb.Efficiency, mb.SteadyEfficiency = r.Efficiency, r.SteadyEfficiency
		}
	}
	st, err := srv.stop()
	if err != nil {
		return nil, err
	}
	mb.ServerRequests, mb.MaxInFlight = st.requests, st.maxInFlight
	if st.requests > 0 {
		mb.ServerCPUMicros = 1e6 * st.cpuSeconds / float64(st.requests)
	}
	return mb, nil
}

// modelPathAt runs twice as many agents as the client's concurrency, so
// that the client always has a question waiting; each agent asks its
// items in turn. Every question is a distinct prompt and sample, so every
// answer is one call. A first wave, one call per agent, opens the
// connections and is not timed.
func modelPathAt(ctx context.Context, url string, concurrency, calls int) (Run, error) {
	client, err := llm.NewClient(llm.ClientConfig{Name: "bench", BaseURL: url, Model: llm.SyntheticName,
		Mode: llm.ModeSample, Samples: 1, Concurrency: concurrency, Timeout: 30 * time.Second})
	if err != nil {
		return Run{}, err
	}
	defer client.Close()
	pvq, err := questionnaires.Builtin("pvq40")
	if err != nil {
		return Run{}, err
	}
	agents := 2 * concurrency
	items := max(1, (calls+agents-1)/agents)
	if items+1 > len(pvq.Items) {
		agents = (calls + len(pvq.Items) - 2) / (len(pvq.Items) - 1)
		items = (calls + agents - 1) / agents
	}
	sh, stop := modelShard(ctx, agents, client)
	defer stop()
	if _, err := sh.Do(ctx, &agent.Task{Model: "bench", Instrument: pvq, Items: []int{len(pvq.Items) - 1}}); err != nil {
		return Run{}, fmt.Errorf("bench model path: %w", err)
	}
	its := make([]int, items)
	for i := range its {
		its[i] = i
	}
	before := client.Stats()
	cpu0 := selfCPU()
	start := time.Now()
	var samples []callSample
	stopSampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(modelSampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				samples = append(samples, callSample{time.Since(start), client.Stats().Calls - before.Calls})
			}
		}
	}()
	_, err = sh.Do(ctx, &agent.Task{Model: "bench", Instrument: pvq, Items: its})
	el := time.Since(start)
	close(stopSampling)
	<-sampled
	if err != nil {
		return Run{}, fmt.Errorf("bench model path: %w", err)
	}
	cpu := selfCPU() - cpu0
	after := client.Stats()
	n := after.Calls - before.Calls
	r := Run{Concurrency: concurrency, Agents: agents, Calls: n, Seconds: el.Seconds(),
		CallsPerSecond: float64(n) / el.Seconds(), SteadyCallsPerSecond: steadyRate(samples, n),
		Retries: after.Retries - before.Retries}
	if n > 0 {
		r.ClientCPUMicros = 1e6 * cpu / float64(n)
	}
	return r, nil
}

// modelSampleEvery is how often a timed model-path run counts the calls
// made so far, to find its steady rate.
const modelSampleEvery = 20 * time.Millisecond

type callSample struct {
	at    time.Duration
	calls int64
}

// steadyRate is the call rate between the samples where a tenth and nine
// tenths of the total calls had been made: the rate the path sustains,
// without the run's first wave (every agent starting at once) and its
// tail (the last requests, when fewer than the slots remain). 0 when the
// run was too short to tell.
func steadyRate(samples []callSample, total int64) float64 {
	lo, hi := -1, -1
	for i, s := range samples {
		if lo < 0 && s.calls*10 >= total {
			lo = i
		}
		if s.calls*10 <= 9*total {
			hi = i
		}
	}
	if lo < 0 || hi <= lo || samples[hi].at <= samples[lo].at {
		return 0
	}
	return float64(samples[hi].calls-samples[lo].calls) / (samples[hi].at - samples[lo].at).Seconds()
}

// modelShard starts one shard of agents asking m; personas cycle over the
// ten values and the unprimed model, and every agent is its persona's own
// sample, so no two agents ask the same question.
func modelShard(ctx context.Context, agents int, m agent.Model) (*agent.Shard, func()) {
	as := make([]agent.Agent, agents)
	for i := range as {
		as[i] = agent.New(i, agent.Persona{Value: population.Persona(i % (values.N + 1))}, i/(values.N+1), 1)
	}
	sh := agent.NewShard(0, 0, as, map[string]agent.Model{"bench": m})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sh.Run(ctx)
	}()
	var once sync.Once
	return sh, func() { once.Do(func() { cancel(); <-done }) }
}

// modelServer is a 'society model-server' child process.
type modelServer struct {
	url    string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	once   sync.Once
	st     serverStats
	err    error
}

type serverStats struct {
	requests, maxInFlight int64
	cpuSeconds            float64
}

var serverStopped = regexp.MustCompile(`stopped after (\d+) requests .* at most (\d+) in flight`)

func startModelServer(ctx context.Context, command func(ctx context.Context) (*exec.Cmd, error)) (*modelServer, error) {
	cmd, err := command(ctx)
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: model server: %w", err)
	}
	s := &modelServer{cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: model server: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	go io.Copy(io.Discard, out)
	i := strings.Index(line, "http://")
	if err != nil || i < 0 {
		s.stop()
		return nil, fmt.Errorf("bench: model server did not say where it listens: %q %v %s", line, err, s.stderr.String())
	}
	s.url = strings.TrimSpace(line[i:])
	if err := waitHealthy(ctx, strings.TrimSuffix(s.url, "/v1")+"/health"); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// stop ends the server with an interrupt, as a user would, and reads its
// accounting.
func (s *modelServer) stop() (serverStats, error) {
	s.once.Do(func() {
		s.cmd.Process.Signal(os.Interrupt)
		werr := s.cmd.Wait()
		if ps := s.cmd.ProcessState; ps != nil {
			if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
				s.st.cpuSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
			}
		}
		if m := serverStopped.FindStringSubmatch(s.stderr.String()); m != nil {
			s.st.requests, _ = strconv.ParseInt(m[1], 10, 64)
			s.st.maxInFlight, _ = strconv.ParseInt(m[2], 10, 64)
		} else if werr != nil {
			s.err = fmt.Errorf("bench: model server: %w: %s", werr, strings.TrimSpace(s.stderr.String()))
		}
	})
	return s.st, s.err
}

func waitHealthy(ctx context.Context, url string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: model server at %s not healthy after 10s: %v", url, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// selfCPU is this process's CPU time so far, user and system, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}
