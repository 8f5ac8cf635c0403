package llmbench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/llm/modelserver"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/sim/simbench"
	"github.com/society-sim/society/values"
)

// DesignInstruments are the built-in instruments of the study's design,
// whose model calls the bench counts; their sizes come from the built-in
// instruments. The persona statements of Perez et al. (2023) come on top,
// K per behaviour over 135 behaviours.
var DesignInstruments = []string{"pvq40", "bfi2", "prosocial", "donation", "charity", "charity_decision", "ebq"}

// personaBehaviours is the number of behaviours in the persona statements
// data set (Perez et al. 2023, "Discovering Language Model Behaviors with
// Model-Written Evaluations").
const personaBehaviours = 135

// Design is a study design: prompts (the ten value prompts and the
// unprimed model), the items every respondent answers, and the study's N
// answers per prompt and item.
type Design struct {
	Prompts     int            `json:"prompts"`
	Instruments map[string]int `json:"instrument_items"`
	PersonaK    int            `json:"persona_statements_per_behaviour"`
	Behaviours  int            `json:"persona_behaviours"`
	Items       int            `json:"items"`
	Repetitions int            `json:"repetitions"`
}

// Count is the model calls one population needs in each query mode.
type Count struct {
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

// ModelCalls counts the calls for a population with counts[p] agents of
// persona p, each answering items items, with n completions per request
// in n-sampling.
func ModelCalls(counts []int, items, n int) (perAnswer, nSampling, distribution int64) {
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

// StudyDesign is the paper's design with K persona statements per
// behaviour and N repetitions.
func StudyDesign(k, n int) (Design, error) {
	d := Design{Prompts: values.N + 1, Instruments: map[string]int{}, PersonaK: k, Behaviours: personaBehaviours, Repetitions: n}
	for _, name := range DesignInstruments {
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

// DesignCalls counts the calls of the design as the study ran it (every
// prompt answered N times) and for populations of the given sizes under
// the H-NP strategy (human dominant-value shares, the rest unprimed).
func DesignCalls(d Design, sizes []int) ([]Count, error) {
	study := make([]int, d.Prompts)
	for i := range study {
		study[i] = d.Repetitions
	}
	pa, ns, di := ModelCalls(study, d.Items, d.Repetitions)
	out := []Count{{Label: fmt.Sprintf("study: %d prompts × N=%d", d.Prompts, d.Repetitions), Agents: int64(d.Prompts * d.Repetitions),
		PerAnswer: pa, NSampling: ns, Distribution: di}}
	w, err := hnpWeights()
	if err != nil {
		return nil, err
	}
	for _, a := range sizes {
		c := population.Counts(w, a)
		pa, ns, di := ModelCalls(c[:], d.Items, d.Repetitions)
		out = append(out, Count{Label: fmt.Sprintf("%d agents, H-NP", a), Agents: int64(a), PerAnswer: pa, NSampling: ns, Distribution: di})
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

// Check compares ModelCalls with the calls a small population really
// made against the model server.
type Check struct {
	Mode           string `json:"mode"`
	Agents         int    `json:"agents"`
	Items          int    `json:"items"`
	N              int    `json:"n"`
	Predicted      int64  `json:"predicted"`
	ClientCalls    int64  `json:"client_calls"`
	ServerRequests int64  `json:"server_requests"`
	Match          bool   `json:"match"`
}

// Calls is the model calls of a study's design and their check.
type Calls struct {
	Design Design  `json:"design"`
	Counts []Count `json:"counts"`
	Check  []Check `json:"check"`
}

// checkAgents and checkN size the check: small enough to run in seconds,
// large enough that several personas need more than one n-sample request.
const (
	checkAgents = 44
	checkN      = 3
)

// MeasureCalls counts the model calls of the study's design with K persona
// statements per behaviour and N repetitions, for the study itself and for
// populations of 10,000 and 1,000,000 agents, and checks the counting on a
// small population against a real client and server answering from the
// synthetic respondents with means.
func MeasureCalls(ctx context.Context, k, n int, means [values.N]float64) (*Calls, error) {
	d, err := StudyDesign(k, n)
	if err != nil {
		return nil, err
	}
	counts, err := DesignCalls(d, []int{10_000, 1_000_000})
	if err != nil {
		return nil, err
	}
	rep := &Calls{Design: d, Counts: counts}
	rep.Check, err = CheckCalls(ctx, checkAgents, checkN, DesignInstruments, means)
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// CheckCalls runs a small H-NP population through the named built-in
// instruments against an in-process model server, once per query mode,
// with a fresh response cache each time, and compares the requests made
// with ModelCalls.
func CheckCalls(ctx context.Context, agents, n int, names []string, means [values.N]float64) ([]Check, error) {
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
	pa, ns, di := ModelCalls(counts[:], items, n)
	modes := []struct {
		name, mode string
		samples    int
		want       int64
	}{
		{"per-answer sampling", llm.ModeSample, 1, pa},
		{fmt.Sprintf("n-sampling (n = %d)", n), llm.ModeSample, n, ns},
		{"distribution", llm.ModeDistribution, 1, di},
	}
	var out []Check
	for _, m := range modes {
		client, server, err := countedRun(ctx, pool, insts, m.mode, m.samples, means)
		if err != nil {
			return nil, fmt.Errorf("bench: call check, %s: %w", m.name, err)
		}
		out = append(out, Check{Mode: m.name, Agents: agents, Items: items, N: m.samples, Predicted: m.want,
			ClientCalls: client, ServerRequests: server, Match: client == m.want && server == m.want})
	}
	return out, nil
}

// countedRun serves the synthetic respondents on a loopback listener, lets
// the pool's agents answer every instrument through a client with a
// response cache, and returns the client's calls and the server's requests.
func countedRun(ctx context.Context, pool *population.Pool, insts []*questionnaires.Instrument, mode string, samples int, means [values.N]float64) (int64, int64, error) {
	h := modelserver.New(llm.NewSynthetic(1, means), modelserver.Options{Seed: 1})
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

// CallsPart is MeasureCalls as a bench run's model-calls part
// (simbench.Suite.Calls), with the synthetic respondents centred on the
// value means of the human sample named means (population.HumanMeans).
func CallsPart(k, n int, means string) func(ctx context.Context) (simbench.Part, error) {
	return func(ctx context.Context) (simbench.Part, error) {
		m, err := population.HumanMeans(means)
		if err != nil {
			return nil, err
		}
		c, err := MeasureCalls(ctx, k, n, m)
		if err != nil {
			return nil, err // not a nil *Calls in a non-nil Part
		}
		return c, nil
	}
}
