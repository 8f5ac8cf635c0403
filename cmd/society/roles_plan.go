package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/bus"
	"github.com/society-sim/society/scenarios"
)

// What every role of a distributed run derives from the run's record: the
// scenario, and from it the same plan the orchestrator built. Agents are
// fully determined by the scenario seed and their id, so any host can
// instantiate any shard and answer exactly as any other would.

// recordPlan parses a registered run's scenario and builds its plan.
// keyless drops the models' API key variables first: the analysis builds
// the plan only to know the study, never calls a model, and so must not
// need a key.
func recordPlan(rec bus.RunRecord, cacheDir string, keyless bool) (*scenarios.Scenario, *plan, error) {
	sc, err := scenarios.Parse([]byte(rec.Scenario), "run "+rec.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("run %s: scenario: %w", rec.ID, err)
	}
	if keyless {
		for i := range sc.Models {
			sc.Models[i].APIKeyEnv = ""
		}
	}
	p, err := buildPlan(sc, cacheDir)
	if err != nil {
		return nil, nil, fmt.Errorf("run %s: %w", rec.ID, err)
	}
	prep, err := decodePrep(rec.Prep)
	if err != nil {
		return nil, nil, fmt.Errorf("run %s: %w", rec.ID, err)
	}
	prep.apply(p)
	// The results keep the scenario exactly as the orchestrator resolved it.
	p.resolved = []byte(rec.Scenario)
	return sc, p, nil
}

// shardBounds are the agent ids [lo, hi) of shard s of n agents in shards.
func shardBounds(s, n, shards int) (lo, hi int) {
	return s * n / shards, (s + 1) * n / shards
}

// newShard instantiates shard s's agents as the single-process run does.
func newShard(p *plan, seed uint64, s, shards int) *agent.Shard {
	pool := p.study.Pool
	lo, hi := shardBounds(s, pool.Size(), shards)
	agents := make([]agent.Agent, hi-lo)
	for i := range agents {
		id := lo + i
		agents[i] = agent.New(id, agent.Persona{Value: pool.Persona[id]}, int(pool.Rank[id]), seed)
	}
	return agent.NewShard(s, lo, agents, p.models)
}

// batchKey names one shard's answers to one item: the unit in which
// answers travel and are stored.
type batchKey struct {
	model, instrument string
	round, item       int
	shard             int
}

// batchSet is the set of answer batches a run has stored; safe for
// concurrent use.
type batchSet struct {
	mu sync.Mutex
	m  map[batchKey]struct{}
}

func newBatchSet() *batchSet { return &batchSet{m: map[batchKey]struct{}{}} }

func (s *batchSet) add(b *agent.Batch) {
	s.mu.Lock()
	s.m[batchKey{b.Model, b.Instrument, b.Round, b.Item, b.Shard}] = struct{}{}
	s.mu.Unlock()
}

func (s *batchSet) has(k batchKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[k]
	return ok
}

// missingTasks are the tasks of a phase whose answers are not all stored.
// A questionnaire phase gets one task per plan and shard asking only the
// items still missing; a game round, whose messages carry the shard's
// memories, gets its messages again for every shard lacking any answer.
// A resumed run thus repeats nothing it already has.
func missingTasks(ph phase, have *batchSet, styles map[string]agent.Style, shards, agents int) []bus.TaskMsg {
	missing := func(pl analysis.Plan, s int) []int {
		var items []int
		for _, it := range pl.Items {
			if !have.has(batchKey{pl.Model, pl.Instrument.Name, pl.Round, it, s}) {
				items = append(items, it)
			}
		}
		sort.Ints(items)
		return items
	}
	var out []bus.TaskMsg
	if ph.tasks != nil {
		for s := range shards {
			lacking := false
			for _, pl := range ph.plans {
				lacking = lacking || len(missing(pl, s)) > 0
			}
			if !lacking {
				continue
			}
			lo, hi := shardBounds(s, agents, shards)
			for _, msg := range ph.tasks(lo, hi) {
				msg.Shard = s
				out = append(out, msg)
			}
		}
		return out
	}
	for _, pl := range ph.plans {
		for s := range shards {
			items := missing(pl, s)
			if len(items) == 0 {
				continue
			}
			out = append(out, bus.TaskMsg{Model: pl.Model, Instrument: pl.Instrument.Name, Items: items,
				Round: pl.Round, Shard: s, Style: string(styles[pl.Model])})
		}
	}
	return out
}

// recordPrep is a run's preparation as its record keeps it, for the
// analysis to report what the orchestrator settled.
type recordPrep struct {
	Calibration []analysis.CalibrationRow `json:"calibration,omitempty"`
	Notes       []string                  `json:"notes,omitempty"`
}

func encodePrep(pr preparation) json.RawMessage {
	if len(pr.calibration) == 0 && len(pr.notes) == 0 {
		return nil
	}
	b, err := json.Marshal(recordPrep{Calibration: pr.calibration, Notes: pr.notes})
	if err != nil {
		return nil
	}
	return b
}

func decodePrep(raw json.RawMessage) (preparation, error) {
	if len(raw) == 0 {
		return preparation{}, nil
	}
	var r recordPrep
	if err := json.Unmarshal(raw, &r); err != nil {
		return preparation{}, fmt.Errorf("run preparation: %w", err)
	}
	return preparation{calibration: r.Calibration, notes: r.Notes}, nil
}
