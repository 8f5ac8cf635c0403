// Package llmbench measures the model path: how many calls per second an
// OpenAI-compatible client gets out of a model server with S slots and a
// latency L, against the S/L the server can give and against a bare
// net/http client making the same calls, and how many model calls a
// study's design needs in each query mode, checked against a real client
// and server; its reports write themselves as the text `society bench`
// prints. It measures the llm adapter alone and must not import bus,
// metrics or cmd; figures from it are about the program, never about
// models.
package llmbench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/sim/simbench"
	"github.com/society-sim/society/values"
)

// ModelPath is one phase of N agents × PVQ-40 items against the model
// server, in sample mode (one call per answer) and in distribution mode
// (one call per distinct persona and item), each through the society
// client and through a bare net/http client making the same calls at the
// same concurrency: the most any client gets out of the server on this
// machine.
type ModelPath struct {
	Slots               int     `json:"slots"`
	LatencySeconds      float64 `json:"latency_seconds"`
	IdealCallsPerSecond float64 `json:"ideal_calls_per_second"`
	Concurrency         int     `json:"client_concurrency"`
	Agents              int     `json:"agents"`
	Items               int     `json:"items"`
	// Efficiency is sample mode's calls/s through the society client over
	// S/L, the most the server can do.
	Efficiency float64 `json:"efficiency"`
	// WarmUpCalls are the sample-mode calls each client made, unmeasured,
	// before the timed phases (a quarter of the phase's items), so that
	// neither client's phase pays for the process warming up: without
	// it, whichever client ran first lost about 0.3% of its rate.
	WarmUpCalls  int64      `json:"warm_up_calls"`
	Sample       Comparison `json:"sample"`
	Distribution Comparison `json:"distribution"`
}

// Comparison is one query mode's phase through the society client beside
// the bare client's same calls. Ratios are society over bare: a rate
// ratio of 1 or more means the society client lost nothing to the bare
// one, a CPU ratio of 2 that it spent twice the CPU per call.
type Comparison struct {
	Mode         string  `json:"mode"`
	Society      Run     `json:"society"`
	Bare         Run     `json:"bare"`
	RateRatio    float64 `json:"rate_ratio"`
	SecondsRatio float64 `json:"seconds_ratio"`
	CPURatio     float64 `json:"cpu_ratio"`
}

// Run is one timed phase, each against a model server process of its own
// so that the server's counts are the phase's alone.
type Run struct {
	Client string `json:"client"` // "society" or "bare"
	// Calls are the requests the client made, ServerRequests those the
	// server received.
	Calls          int64   `json:"calls"`
	ServerRequests int64   `json:"server_requests"`
	Seconds        float64 `json:"seconds"`
	// MinSeconds is the least time the server needs for the calls:
	// ⌈calls/S⌉ waves of L.
	MinSeconds     float64 `json:"min_seconds"`
	CallsPerSecond float64 `json:"calls_per_second"`
	Efficiency     float64 `json:"efficiency"` // CallsPerSecond over S/L
	// Steady* leave out the phase's first and last tenth of calls; 0 for a
	// phase shorter than steadyLatencies latencies.
	SteadyCallsPerSecond float64 `json:"steady_calls_per_second"`
	SteadyEfficiency     float64 `json:"steady_efficiency"`
	// PeakInFlight is the most requests the server had open at once
	// (received and not yet answered: queued for a slot or in service),
	// the concurrency the client reached; PeakInService the most in
	// service (at most S).
	PeakInFlight  int64 `json:"server_peak_in_flight"`
	PeakInService int64 `json:"server_peak_in_service"`
	// ClientCPUMicros is this process's CPU time (user and system) per
	// call during the phase: the client, and for the society client its
	// agents drawing and recording answers too.
	ClientCPUMicros float64 `json:"client_cpu_us_per_call"`
	ServerCPUMicros float64 `json:"server_cpu_us_per_call"`
	Retries         int64   `json:"client_retries"`
}

// Options configure a model-path measurement.
type Options struct {
	// Slots (S) and Latency (L) are the model server's, given to Server.
	Slots   int
	Latency time.Duration
	// Agents answer Items PVQ-40 items each; 0 means 1,000 agents and
	// every item.
	Agents int
	Items  int
	// Concurrency is the clients' concurrency; 0 means 2·S, so that a
	// request is always waiting for the slot that frees.
	Concurrency int
	// Server makes the command of a model server with S slots and latency
	// L ('society model-server'): it prints its base URL (http://...) on
	// the first line of stdout, serves GET /health, and at an interrupt
	// exits after printing "stopped after N requests ... at most M in
	// flight, at most K open" on stderr (M in service, K received and not
	// yet answered). It runs in a process of its own so that this
	// process's CPU time is the client's alone.
	Server func(ctx context.Context) (*exec.Cmd, error)
	// Log gets a line as the measurement starts; nil drops it.
	Log io.Writer
}

// Query modes' agents are those of the bench: DefaultAgents answering every
// PVQ-40 item.
const DefaultAgents = 1000

// MeasureModelPath times the phase of o.Agents agents answering o.Items
// PVQ-40 items in sample mode and then in distribution mode, through the
// society client as the engine drives it (Prefetch of the phase's distinct
// questions, started as the agents start asking) and through a bare
// net/http client making the same calls, each against a fresh model
// server.
func MeasureModelPath(ctx context.Context, o Options) (*ModelPath, error) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "bench: model path, S=%d L=%v\n", o.Slots, o.Latency)
	}
	pvq, err := questionnaires.Builtin("pvq40")
	if err != nil {
		return nil, err
	}
	if o.Agents == 0 {
		o.Agents = DefaultAgents
	}
	if o.Items == 0 || o.Items > len(pvq.Items) {
		o.Items = len(pvq.Items)
	}
	if o.Concurrency == 0 {
		o.Concurrency = 2 * o.Slots
	}
	mp := &ModelPath{Slots: o.Slots, LatencySeconds: o.Latency.Seconds(), IdealCallsPerSecond: float64(o.Slots) / o.Latency.Seconds(),
		Concurrency: o.Concurrency, Agents: o.Agents, Items: o.Items}
	ph := phase{pvq: pvq, agents: o.Agents, items: o.Items, concurrency: o.Concurrency}
	if mp.WarmUpCalls, err = warmUp(ctx, o.Server, ph); err != nil {
		return nil, err
	}
	for _, mode := range []string{llm.ModeSample, llm.ModeDistribution} {
		ph.mode = mode
		c := Comparison{Mode: mode}
		for _, bare := range []bool{false, true} {
			r, err := measureOn(ctx, o.Server, func(ctx context.Context, url string) (Run, error) {
				if bare {
					return ph.bare(ctx, url)
				}
				return ph.society(ctx, url)
			})
			if err != nil {
				return nil, fmt.Errorf("bench model path, %s mode: %w", mode, err)
			}
			r.MinSeconds = math.Ceil(float64(r.Calls)/float64(o.Slots)) * o.Latency.Seconds()
			r.Efficiency = r.CallsPerSecond / mp.IdealCallsPerSecond
			if r.Seconds < steadyLatencies*o.Latency.Seconds() {
				// A phase of a few waves has no steady state: its rate
				// between the tenths is one wave's burst.
				r.SteadyCallsPerSecond = 0
			}
			r.SteadyEfficiency = r.SteadyCallsPerSecond / mp.IdealCallsPerSecond
			if bare {
				c.Bare = r
			} else {
				c.Society = r
			}
		}
		c.RateRatio = ratio(c.Society.CallsPerSecond, c.Bare.CallsPerSecond)
		c.SecondsRatio = ratio(c.Society.Seconds, c.Bare.Seconds)
		c.CPURatio = ratio(c.Society.ClientCPUMicros, c.Bare.ClientCPUMicros)
		if mode == llm.ModeSample {
			mp.Sample = c
		} else {
			mp.Distribution = c
		}
	}
	mp.Efficiency = mp.Sample.Society.Efficiency
	return mp, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// warmUp runs a quarter of ph's items (at least one) in sample mode
// through the society client and then the bare one against a model server
// of its own, unmeasured, and returns the calls each made. The process's
// first phase otherwise pays for what every later one finds ready (heap
// grown, code paged in, goroutine stacks sized): run first, either client
// lost about 0.3% of its rate against the same client run second.
func warmUp(ctx context.Context, server func(context.Context) (*exec.Cmd, error), ph phase) (int64, error) {
	ph.mode = llm.ModeSample
	ph.items = max(1, ph.items/4)
	srv, err := startModelServer(ctx, server)
	if err != nil {
		return 0, fmt.Errorf("bench model path, warm-up: %w", err)
	}
	defer srv.stop()
	var calls int64
	for _, run := range []func(context.Context, string) (Run, error){ph.society, ph.bare} {
		r, err := run(ctx, srv.url)
		if err != nil {
			return 0, fmt.Errorf("bench model path, warm-up: %w", err)
		}
		calls = r.Calls
	}
	if _, err := srv.stop(); err != nil {
		return 0, fmt.Errorf("bench model path, warm-up: %w", err)
	}
	return calls, nil
}

// measureOn runs one phase against a model server of its own and adds
// the server's counts.
func measureOn(ctx context.Context, server func(context.Context) (*exec.Cmd, error), fn func(ctx context.Context, url string) (Run, error)) (Run, error) {
	srv, err := startModelServer(ctx, server)
	if err != nil {
		return Run{}, err
	}
	defer srv.stop()
	r, err := fn(ctx, srv.url)
	if err != nil {
		return Run{}, err
	}
	st, err := srv.stop()
	if err != nil {
		return Run{}, err
	}
	r.ServerRequests, r.PeakInService, r.PeakInFlight = st.requests, st.maxInFlight, st.maxOpen
	if st.requests > 0 {
		r.ServerCPUMicros = 1e6 * st.cpuSeconds / float64(st.requests)
	}
	return r, nil
}

// phase is one model phase: agents answering the first items of pvq in
// mode, with the clients' concurrency. Agent i holds persona i mod 11
// (the ten values and the unprimed model) and is that persona's sample
// i div 11, so in sample mode every answer is a call of its own and in
// distribution mode every distinct persona and item is one.
type phase struct {
	pvq         *questionnaires.Instrument
	mode        string
	agents      int
	items       int
	concurrency int
}

// demand is the number of agents holding each persona.
func (ph phase) demand() map[values.Value]int {
	d := map[values.Value]int{}
	for i := range ph.agents {
		d[population.Persona(i%(values.N+1))]++
	}
	return d
}

// questions are the phase's distinct questions, one per persona held by
// an agent and item, as the agents ask them: what the engine hands to
// Prefetch.
func (ph phase) questions() []*agent.Question {
	var qs []*agent.Question
	for i := range min(ph.agents, values.N+1) {
		for it := range ph.items {
			qs = append(qs, &agent.Question{Persona: agent.Persona{Value: population.Persona(i)}, Instrument: ph.pvq, Item: it})
		}
	}
	return qs
}

// society runs the phase through the society client as the engine does:
// the shard's agents ask their items in turn while Prefetch, started just
// before (StartPrefetch), fetches every request the phase needs at the
// client's concurrency (in sample mode the samples up to each persona's
// demand).
func (ph phase) society(ctx context.Context, url string) (Run, error) {
	d := ph.demand()
	client, err := llm.NewClient(llm.ClientConfig{Name: "bench", BaseURL: url, Model: llm.SyntheticName,
		Mode: ph.mode, Samples: 1, Concurrency: ph.concurrency, Timeout: 30 * time.Second,
		Demand: func(p agent.Persona) int { return d[p.Value] }})
	if err != nil {
		return Run{}, err
	}
	defer client.Close()
	sh, stop := modelShard(ctx, ph.agents, client)
	defer stop()
	its := make([]int, ph.items)
	for i := range its {
		its[i] = i
	}
	qs := ph.questions()
	before := client.Stats()
	m := startMeter(func() int64 { return client.Stats().Calls - before.Calls })
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prefetched := client.StartPrefetch(pctx, qs)
	_, err = sh.Do(ctx, &agent.Task{Model: "bench", Instrument: ph.pvq, Items: its})
	if err != nil {
		cancel()
	}
	perr := prefetched()
	el, cpu, samples := m.end()
	if err = errors.Join(err, perr); err != nil {
		return Run{}, err
	}
	after := client.Stats()
	n := after.Calls - before.Calls
	return timedRun("society", n, el, cpu, samples, after.Retries-before.Retries), nil
}

func timedRun(client string, calls int64, el time.Duration, cpu float64, samples []callSample, retries int64) Run {
	r := Run{Client: client, Calls: calls, Seconds: el.Seconds(), SteadyCallsPerSecond: steadyRate(samples, calls), Retries: retries}
	if el > 0 {
		r.CallsPerSecond = float64(calls) / el.Seconds()
	}
	if calls > 0 {
		r.ClientCPUMicros = 1e6 * cpu / float64(calls)
	}
	return r
}

// meter times a phase: wall time, this process's CPU time, and the calls
// made so far every modelSampleEvery (for the steady rate).
type meter struct {
	start   time.Time
	cpu0    float64
	samples []callSample
	stop    chan struct{}
	done    chan struct{}
}

// startMeter collects garbage first, so that the phase does not pay for
// the one before it.
func startMeter(calls func() int64) *meter {
	runtime.GC()
	m := &meter{cpu0: selfCPU(), stop: make(chan struct{}), done: make(chan struct{})}
	m.start = time.Now()
	go func() {
		defer close(m.done)
		tick := time.NewTicker(modelSampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
				m.samples = append(m.samples, callSample{time.Since(m.start), calls()})
			}
		}
	}()
	return m
}

func (m *meter) end() (time.Duration, float64, []callSample) {
	el := time.Since(m.start)
	cpu := selfCPU() - m.cpu0
	close(m.stop)
	<-m.done
	return el, cpu, m.samples
}

// steadyLatencies is the shortest phase, in latencies L, whose steady
// rate is reported.
const steadyLatencies = 10

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
	requests, maxInFlight, maxOpen int64
	cpuSeconds                     float64
}

// serverStopped finds the model server's log line at its stop ('society
// model-server' logs its accounting as key=value fields, modelserver
// Stats.Attrs) and the fields read from it.
var (
	serverStopped = regexp.MustCompile(`msg="model server stopped"[^\n]*`)
	serverField   = regexp.MustCompile(`\b(requests|max_in_flight|max_open)=(\d+)\b`)
)

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
		if line := serverStopped.FindString(s.stderr.String()); line != "" {
			for _, f := range serverField.FindAllStringSubmatch(line, -1) {
				n, _ := strconv.ParseInt(f[2], 10, 64)
				switch f[1] {
				case "requests":
					s.st.requests = n
				case "max_in_flight":
					s.st.maxInFlight = n
				case "max_open":
					s.st.maxOpen = n
				}
			}
		} else {
			s.err = fmt.Errorf("bench: model server: no accounting at exit (%v): %s", werr, strings.TrimSpace(s.stderr.String()))
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

// Part is MeasureModelPath as a bench run's model-path part
// (simbench.Suite.ModelPath): the figures, and their efficiency that every
// row of the report repeats.
func (o Options) Part(ctx context.Context) (simbench.Part, float64, error) {
	mp, err := MeasureModelPath(ctx, o)
	if err != nil {
		return nil, 0, err
	}
	return mp, mp.Efficiency, nil
}
