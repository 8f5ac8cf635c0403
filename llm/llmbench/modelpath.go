package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

// modelBench is the model path's throughput against the model server.
type modelBench struct {
	Slots               int     `json:"slots"`
	LatencySeconds      float64 `json:"latency_seconds"`
	IdealCallsPerSecond float64 `json:"ideal_calls_per_second"`
	// Efficiency is the achieved calls/s over S/L, the most the server can
	// do, with the client's concurrency at Concurrency (by default 2·S, so
	// that a request is always waiting for the slot that frees).
	Efficiency       float64        `json:"efficiency"`
	SteadyEfficiency float64        `json:"steady_efficiency"`
	Concurrency      int            `json:"client_concurrency"`
	Runs             []modelPathRun `json:"runs"`
	ServerCPUMicros  float64        `json:"server_cpu_us_per_call"`
	ServerRequests   int64          `json:"server_requests"`
	MaxInFlight      int64          `json:"server_max_in_flight"`
}

// modelPathRun is one timed run at one client concurrency.
type modelPathRun struct {
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

// benchModelPath times agents asking the model server through the OpenAI
// client, at client concurrency S and at o.Concurrency. The server runs in
// a child process ('society model-server'), so that this process's CPU
// time is the client's alone.
func benchModelPath(ctx context.Context, o benchOptions) (*modelBench, error) {
	calls := o.ModelCalls
	if calls == 0 {
		calls = 50 * o.Slots
	}
	conc := o.Concurrency
	if conc == 0 {
		conc = 2 * o.Slots
	}
	srv, err := startModelServer(ctx, o)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	mb := &modelBench{Slots: o.Slots, LatencySeconds: o.Latency.Seconds(), IdealCallsPerSecond: float64(o.Slots) / o.Latency.Seconds(),
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
func modelPathAt(ctx context.Context, url string, concurrency, calls int) (modelPathRun, error) {
	client, err := llm.NewClient(llm.ClientConfig{Name: "bench", BaseURL: url, Model: llm.SyntheticName,
		Mode: llm.ModeSample, Samples: 1, Concurrency: concurrency, Timeout: 30 * time.Second})
	if err != nil {
		return modelPathRun{}, err
	}
	defer client.Close()
	pvq, err := questionnaires.Builtin("pvq40")
	if err != nil {
		return modelPathRun{}, err
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
		return modelPathRun{}, fmt.Errorf("bench model path: %w", err)
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
		return modelPathRun{}, fmt.Errorf("bench model path: %w", err)
	}
	cpu := selfCPU() - cpu0
	after := client.Stats()
	n := after.Calls - before.Calls
	r := modelPathRun{Concurrency: concurrency, Agents: agents, Calls: n, Seconds: el.Seconds(),
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

func startModelServer(ctx context.Context, o benchOptions) (*modelServer, error) {
	mk := o.child
	if mk == nil {
		mk = selfCommand
	}
	cmd, err := mk(ctx, []string{"model-server", "--addr", "127.0.0.1:0", "--latency", o.Latency.String(),
		"--slots", strconv.Itoa(o.Slots), "--seed", strconv.FormatUint(o.Seed, 10)})
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

// The study's design, whose model calls the bench counts. Instrument sizes
// come from the built-in instruments; the persona statements of Perez et
// al. (2023) are K per behaviour over 135 behaviours.
var designInstruments = []string{"pvq40", "bfi2", "prosocial", "donation", "charity", "charity_decision", "ebq"}

// personaBehaviours is the number of behaviours in the persona statements
// data set (Perez et al. 2023, "Discovering Language Model Behaviors with
// Model-Written Evaluations").
const personaBehaviours = 135

// callDesign is a study design: prompts (the ten value prompts and the
// unprimed model), the items every respondent answers, and the study's N
// answers per prompt and item.
type callDesign struct {
	Prompts     int            `json:"prompts"`
	Instruments map[string]int `json:"instrument_items"`
	PersonaK    int            `json:"persona_statements_per_behaviour"`
	Behaviours  int            `json:"persona_behaviours"`
	Items       int            `json:"items"`
	Repetitions int            `json:"repetitions"`
}

// callCount is the model calls one population needs in each query mode.
type callCount struct {
	Label  string `json:"label"`
	Agents int64  `json:"agents"`
	// PerAnswer is one call per answer (the study's sampling, one
	// completion per request); NSampling asks for n = Repetitions
	// completions per request, so a persona's agents share requests;
	// Distribution asks once per distinct prompt and item and lets the
	// agents draw their answers.
	PerAnswer    int64 `json:"per_answer_sampling"`
	NSampling    int64 `json:"n_sampling"`
	Distribution int64 `json:"distribution"`
}

// modelCalls counts the calls for a population with counts[p] agents of
// persona p, each answering items items, with n completions per request
// in n-sampling.
func modelCalls(counts []int, items, n int) (perAnswer, nSampling, distribution int64) {
	for _, c := range counts {
		if c <= 0 {
			continue
		}
		perAnswer += int64(c) * int64(items)
		nSampling += int64((c+n-1)/n) * int64(items)
		distribution += int64(items)
	}
	return perAnswer, nSampling, distribution
}

// studyDesign is the paper's design with K persona statements per
// behaviour and N repetitions.
func studyDesign(k, n int) (callDesign, error) {
	d := callDesign{Prompts: values.N + 1, Instruments: map[string]int{}, PersonaK: k, Behaviours: personaBehaviours, Repetitions: n}
	for _, name := range designInstruments {
		in, err := questionnaires.Builtin(name)
		if err != nil {
			return d, err
		}
		d.Instruments[name] = len(in.Items)
		d.Items += len(in.Items)
	}
	d.Instruments["persona"] = k * personaBehaviours
	d.Items += k * personaBehaviours
	return d, nil
}

// designCalls counts the calls of the design as the study ran it (every
// prompt answered N times) and for populations of the given sizes under
// the H-NP strategy (human dominant-value shares, the rest unprimed).
func designCalls(d callDesign, sizes []int) ([]callCount, error) {
	study := make([]int, d.Prompts)
	for i := range study {
		study[i] = d.Repetitions
	}
	pa, ns, di := modelCalls(study, d.Items, d.Repetitions)
	out := []callCount{{Label: fmt.Sprintf("study: %d prompts × N=%d", d.Prompts, d.Repetitions), Agents: int64(d.Prompts * d.Repetitions),
		PerAnswer: pa, NSampling: ns, Distribution: di}}
	w, err := hnpWeights()
	if err != nil {
		return nil, err
	}
	for _, a := range sizes {
		c := population.Counts(w, a)
		pa, ns, di := modelCalls(c[:], d.Items, d.Repetitions)
		out = append(out, callCount{Label: fmt.Sprintf("%d agents, H-NP", a), Agents: int64(a), PerAnswer: pa, NSampling: ns, Distribution: di})
	}
	return out, nil
}

func hnpWeights() (population.Weights, error) {
	sh, err := population.HumanShares("gss2012")
	if err != nil {
		return population.Weights{}, err
	}
	return population.StrategyWeights(population.HNP, sh, 0.53)
}

// callCheck compares modelCalls with the calls a small population really
// made against the model server.
type callCheck struct {
	Mode           string `json:"mode"`
	Agents         int    `json:"agents"`
	Items          int    `json:"items"`
	N              int    `json:"n"`
	Predicted      int64  `json:"predicted"`
	ClientCalls    int64  `json:"client_calls"`
	ServerRequests int64  `json:"server_requests"`
	Match          bool   `json:"match"`
}

type callsReport struct {
	Design callDesign  `json:"design"`
	Counts []callCount `json:"counts"`
	Check  []callCheck `json:"check"`
}

// checkAgents and checkN size the check: small enough to run in seconds,
// large enough that several personas need more than one n-sample request.
const (
	checkAgents = 44
	checkN      = 3
)

func benchCalls(ctx context.Context, o benchOptions) (*callsReport, error) {
	d, err := studyDesign(o.PersonaK, o.Repetitions)
	if err != nil {
		return nil, err
	}
	counts, err := designCalls(d, []int{10_000, 1_000_000})
	if err != nil {
		return nil, err
	}
	rep := &callsReport{Design: d, Counts: counts}
	rep.Check, err = checkCalls(ctx, checkAgents, checkN, designInstruments)
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// checkCalls runs a small H-NP population through the named built-in
// instruments against an in-process model server, once per query mode,
// with a fresh response cache each time, and compares the requests made
// with modelCalls.
func checkCalls(ctx context.Context, agents, n int, names []string) ([]callCheck, error) {
	w, err := hnpWeights()
	if err != nil {
		return nil, err
	}
	counts := population.Counts(w, agents)
	pool := population.NewPool([]population.Member{{Name: "h-np", Counts: counts}}, 1)
	var insts []*questionnaires.Instrument
	items := 0
	for _, name := range names {
		in, err := questionnaires.Builtin(name)
		if err != nil {
			return nil, err
		}
		insts = append(insts, in)
		items += len(in.Items)
	}
	pa, ns, di := modelCalls(counts[:], items, n)
	modes := []struct {
		name, mode string
		samples    int
		want       int64
	}{
		{"per-answer sampling", llm.ModeSample, 1, pa},
		{fmt.Sprintf("n-sampling (n = %d)", n), llm.ModeSample, n, ns},
		{"distribution", llm.ModeDistribution, 1, di},
	}
	var out []callCheck
	for _, m := range modes {
		client, server, err := countedRun(ctx, pool, insts, m.mode, m.samples)
		if err != nil {
			return nil, fmt.Errorf("bench: call check, %s: %w", m.name, err)
		}
		out = append(out, callCheck{Mode: m.name, Agents: agents, Items: items, N: m.samples, Predicted: m.want,
			ClientCalls: client, ServerRequests: server, Match: client == m.want && server == m.want})
	}
	return out, nil
}

// countedRun serves the synthetic respondents on a loopback listener, lets
// the pool's agents answer every instrument through a client with a
// response cache, and returns the client's calls and the server's requests.
func countedRun(ctx context.Context, pool *population.Pool, insts []*questionnaires.Instrument, mode string, samples int) (int64, int64, error) {
	means, err := population.HumanMeans(syntheticMeans)
	if err != nil {
		return 0, 0, err
	}
	h := llm.NewServer(llm.NewSynthetic(1, means), llm.ServerOptions{Seed: 1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	defer func() {
		hs.Close()
		<-served
	}()
	client, err := llm.NewClient(llm.ClientConfig{Name: "check", BaseURL: "http://" + ln.Addr().String() + "/v1",
		Model: llm.SyntheticName, Mode: mode, Samples: samples, Concurrency: 32, Cache: llm.NewCache(llm.NewMemStore())})
	if err != nil {
		return 0, 0, err
	}
	defer client.Close()
	as := make([]agent.Agent, pool.Size())
	for i := range as {
		as[i] = agent.New(i, agent.Persona{Value: pool.Persona[i]}, int(pool.Rank[i]), 1)
	}
	sh := agent.NewShard(0, 0, as, map[string]agent.Model{"check": client})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sh.Run(rctx)
	}()
	defer func() { cancel(); <-done }()
	for _, in := range insts {
		its := make([]int, len(in.Items))
		for i := range its {
			its[i] = i
		}
		batches, err := sh.Do(ctx, &agent.Task{Model: "check", Instrument: in, Items: its})
		if err != nil {
			return 0, 0, err
		}
		for _, b := range batches {
			if len(b.Invalid) > 0 {
				return 0, 0, errors.New(in.Name + ": invalid answers: " + b.Invalid[0].Reason)
			}
		}
	}
	return client.Stats().Calls, h.Stats().Requests, nil
}

func printCalls(w io.Writer, c *callsReport) {
	d := c.Design
	fmt.Fprintf(w, "\nModel calls of the study's design: %d prompts (ten values and no priming), %d items per respondent "+
		"(pvq40 %d, bfi2 %d, prosocial %d, donation %d, charity %d+%d, ebq %d, persona statements %d × %d behaviours), N = %d:\n\n",
		d.Prompts, d.Items, d.Instruments["pvq40"], d.Instruments["bfi2"], d.Instruments["prosocial"], d.Instruments["donation"],
		d.Instruments["charity"], d.Instruments["charity_decision"], d.Instruments["ebq"], d.PersonaK, d.Behaviours, d.Repetitions)
	fmt.Fprintf(w, "  %-28s %18s %18s %14s\n", "population", "per-answer", fmt.Sprintf("n-sampling (n=%d)", d.Repetitions), "distribution")
	for _, r := range c.Counts {
		fmt.Fprintf(w, "  %-28s %18s %18s %14s\n", r.Label, group(r.PerAnswer), group(r.NSampling), group(r.Distribution))
	}
	if len(c.Check) > 0 {
		fmt.Fprintf(w, "\nChecked on %d agents (H-NP) × %d items of the built-in instruments against the model server:\n", c.Check[0].Agents, c.Check[0].Items)
		for _, k := range c.Check {
			verdict := "match"
			if !k.Match {
				verdict = "MISMATCH"
			}
			fmt.Fprintf(w, "  %-22s predicted %6d, client calls %6d, server requests %6d: %s\n", k.Mode, k.Predicted, k.ClientCalls, k.ServerRequests, verdict)
		}
	}
}

// group writes an integer with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
