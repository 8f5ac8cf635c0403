package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/sim"
)

// RunsBucket is the JetStream key-value bucket in which orchestrators
// register their runs (key: the run id) and from which agent hosts and
// analysis services learn them.
const RunsBucket = "SOCIETY_RUNS"

// RunState is where a run stands.
type RunState string

// The states of a run, in the order a run goes through them.
const (
	// RunRunning: tasks are being published and answered.
	RunRunning RunState = "running"
	// RunComplete: every answer is in; the analysis is asked to compute
	// and write the results.
	RunComplete RunState = "complete"
	// RunDone: the results are written (Dir, Results).
	RunDone RunState = "done"
	// RunFailed: the run stopped on an error (Error).
	RunFailed RunState = "failed"
)

const runVersion = 1

// maxScenario bounds the scenario text of a record: a resolved scenario is
// a few kilobytes.
const maxScenario = 256 << 10

// RunRecord is a run as the registry keeps it.
type RunRecord struct {
	V  int    `json:"v"`
	ID string `json:"id"`
	// Scenario is the resolved scenario (every default filled in) as TOML:
	// everything a host needs to instantiate any shard's agents.
	Scenario string `json:"scenario"`
	// Shards is the run's agent layout, fixed when the run was first
	// registered so that a resumed run's stored answers still line up.
	Shards int `json:"shards"`
	// Epoch counts the orchestrator's starts of the run; task message ids
	// carry it, so a resumed run's tasks are not taken for duplicates.
	Epoch int `json:"epoch"`
	// Prep is what the orchestrator settled before the run that the
	// results report (a calibration, notes), opaque to the bus.
	Prep  json.RawMessage `json:"prep,omitempty"`
	State RunState        `json:"state"`
	Error string          `json:"error,omitempty"`
	// Dir and Host say where the analysis wrote the results directory;
	// Results is its results.json when it fits in a record.
	Dir     string          `json:"dir,omitempty"`
	Host    string          `json:"host,omitempty"`
	Results json.RawMessage `json:"results,omitempty"`
	// Start is when the run was first started (RFC 3339, UTC), kept when
	// it is resumed: the results' run block starts there. Records that
	// predate it have none.
	Start string `json:"start,omitempty"`
	// Produced is what the results last written recorded beyond the
	// answers, kept as long as no start of the run since has handed out a
	// task: a run started again with nothing left to answer writes the
	// same results again from it. Nil otherwise, and in records that
	// predate it.
	Produced *Produced `json:"produced,omitempty"`
}

// EncodeRunRecord encodes a record.
func EncodeRunRecord(r RunRecord) []byte {
	r.V = runVersion
	b, _ := json.Marshal(r) // cannot fail: plain fields and raw JSON checked on decode
	return b
}

// DecodeRunRecord decodes and checks a record.
func DecodeRunRecord(data []byte) (RunRecord, error) {
	var r RunRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return RunRecord{}, fmt.Errorf("%w: run record: %v", ErrBadMessage, err)
	}
	if r.V != runVersion {
		return RunRecord{}, fmt.Errorf("%w: run record version %d, want %d", ErrBadMessage, r.V, runVersion)
	}
	var errs []error
	if r.ID == "" || token(r.ID) != r.ID {
		errs = append(errs, fmt.Errorf("id %q is not a run id", r.ID))
	}
	if r.Scenario == "" || len(r.Scenario) > maxScenario {
		errs = append(errs, fmt.Errorf("scenario of %d bytes", len(r.Scenario)))
	}
	if r.Shards < 1 || r.Shards > maxShards {
		errs = append(errs, fmt.Errorf("shards %d out of 1..%d", r.Shards, maxShards))
	}
	if r.Epoch < 1 {
		errs = append(errs, fmt.Errorf("epoch %d", r.Epoch))
	}
	switch r.State {
	case RunRunning, RunComplete, RunDone, RunFailed:
	default:
		errs = append(errs, fmt.Errorf("state %q", r.State))
	}
	if err := errors.Join(errs...); err != nil {
		return RunRecord{}, fmt.Errorf("%w: run record: %v", ErrBadMessage, err)
	}
	return r, nil
}

// maxShards bounds the shard count of a record and a task: far more than a
// run of millions of agents uses, few enough that a forged record cannot
// make a host allocate without limit.
const maxShards = 1 << 20

// RunID turns a name into a valid run id (one subject token, one key).
func RunID(name string) string { return token(name) }

// Registry is the run registry bucket.
type Registry struct {
	kv jetstream.KeyValue
}

// RegistryOptions bound the bucket.
type RegistryOptions struct {
	// Replicas is the bucket's replication in a cluster; 0 means 1.
	Replicas int
	// MaxBytes bounds the bucket; 0 means 64 MiB (hundreds of runs).
	MaxBytes int64
}

// OpenRegistry creates the registry bucket, or binds to it when it exists.
// It is kept on disk so that runs survive a server restart.
func OpenRegistry(ctx context.Context, js jetstream.JetStream, o RegistryOptions) (*Registry, error) {
	kv, err := js.KeyValue(ctx, RunsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		if o.MaxBytes == 0 {
			o.MaxBytes = 64 << 20
		}
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      RunsBucket,
			Description: "society runs: id -> resolved scenario and state",
			History:     1,
			Storage:     jetstream.FileStorage,
			MaxBytes:    o.MaxBytes,
			Replicas:    max(o.Replicas, 1),
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, RunsBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("run registry: %w", err)
	}
	return &Registry{kv: kv}, nil
}

// Get returns a run's record and its revision; ok is false when the run is
// not registered.
func (r *Registry) Get(ctx context.Context, id string) (rec RunRecord, rev uint64, ok bool, err error) {
	e, err := r.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return RunRecord{}, 0, false, nil
	}
	if err != nil {
		return RunRecord{}, 0, false, fmt.Errorf("run registry: get %s: %w", id, err)
	}
	rec, err = DecodeRunRecord(e.Value())
	if err != nil {
		return RunRecord{}, 0, false, fmt.Errorf("run registry: %s: %w", id, err)
	}
	return rec, e.Revision(), true, nil
}

// Create registers a new run; it fails if the id is taken.
func (r *Registry) Create(ctx context.Context, rec RunRecord) (uint64, error) {
	rev, err := r.kv.Create(ctx, rec.ID, EncodeRunRecord(rec))
	if err != nil {
		return 0, fmt.Errorf("run registry: create %s: %w", rec.ID, err)
	}
	return rev, nil
}

// ErrRunChanged is returned by Update when the record changed since rev.
var ErrRunChanged = errors.New("run record changed meanwhile")

// Update replaces the record at revision rev (compare and set).
func (r *Registry) Update(ctx context.Context, rec RunRecord, rev uint64) (uint64, error) {
	n, err := r.kv.Update(ctx, rec.ID, EncodeRunRecord(rec), rev)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return 0, fmt.Errorf("run registry: update %s: %w", rec.ID, ErrRunChanged)
		}
		return 0, fmt.Errorf("run registry: update %s: %w", rec.ID, err)
	}
	return n, nil
}

// Modify applies fn to the current record and stores the result, trying
// again when another process changed the record meanwhile. fn returning an
// error leaves the record as it is.
func (r *Registry) Modify(ctx context.Context, id string, fn func(*RunRecord) error) (RunRecord, error) {
	for {
		rec, rev, ok, err := r.Get(ctx, id)
		if err != nil {
			return RunRecord{}, err
		}
		if !ok {
			return RunRecord{}, fmt.Errorf("run registry: %s: not registered", id)
		}
		if err := fn(&rec); err != nil {
			return RunRecord{}, err
		}
		if _, err := r.Update(ctx, rec, rev); errors.Is(err, ErrRunChanged) {
			continue
		} else if err != nil {
			return RunRecord{}, err
		}
		return rec, nil
	}
}

// Delete removes a run's record.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if err := r.kv.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("run registry: delete %s: %w", id, err)
	}
	return nil
}

// Watch calls fn with every registered run and then with its changes,
// until ctx is done. The registry keeps one revision per run, so a state
// replaced before the watch delivered it may be passed over (complete,
// say, when done follows at once): fn must act on the state it is given,
// not count on seeing each one. A deleted run comes as a record with only
// ID set and an empty State. Records this version cannot read go to bad
// and are skipped. When the watch breaks (a server restart), it is opened
// again.
func (r *Registry) Watch(ctx context.Context, fn func(RunRecord), bad func(error)) error {
	for ctx.Err() == nil {
		if err := r.watchOnce(ctx, fn, bad); err != nil && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

func (r *Registry) watchOnce(ctx context.Context, fn func(RunRecord), bad func(error)) error {
	w, err := r.kv.WatchAll(ctx)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch closed")
			}
			if e == nil {
				continue // the end of the initial values
			}
			if strings.HasPrefix(e.Key(), statsPrefix) {
				continue // a host's statistics, not a run
			}
			if e.Operation() != jetstream.KeyValuePut {
				fn(RunRecord{ID: e.Key()})
				continue
			}
			rec, err := DecodeRunRecord(e.Value())
			if err != nil {
				if bad != nil {
					bad(fmt.Errorf("run registry key %s: %w", e.Key(), err))
				}
				continue
			}
			fn(rec)
		}
	}
}

// HostStats is one agent host's model traffic for one run, as it reports
// it to the registry: the analysis adds up every host's for the results.
// CacheHits counts model calls saved by the cache, AnswersReused answers
// served by a reply beyond its first (llm.ClientStats); hosts that predate
// AnswersReused leave it out, and their cache_hits counted answers.
type HostStats struct {
	V    int    `json:"v"`
	Host string `json:"host"`
	analysis.LLMCounts
	// Models is the same traffic per model, with what each model's
	// server said about itself; hosts that predate it leave it out.
	Models []HostModelStats `json:"models,omitempty"`
	// Tests are the tests the host's test-primed models filled in, by
	// model (sim.FilledTests), for the run's prompts.csv.
	Tests map[string][]sim.FilledTest `json:"tests,omitempty"`
	// Prefetch is the host's fetch ahead of its tasks' answers.
	Prefetch *PrefetchCount `json:"prefetch,omitempty"`
}

// HostModelStats is one model's traffic on one host, as a single process
// counts it (analysis.ModelTraffic), and what the endpoint said it
// served (llm.Served).
type HostModelStats struct {
	Model string `json:"model"`
	analysis.ModelTraffic
	ServedModel string `json:"served_model,omitempty"`
	Fingerprint string `json:"system_fingerprint,omitempty"`
	// LastServedModel and LastFingerprint are the last the server
	// reported, FingerprintChanged whether its replies reported more than
	// one fingerprint.
	LastServedModel    string `json:"last_served_model,omitempty"`
	LastFingerprint    string `json:"last_system_fingerprint,omitempty"`
	FingerprintChanged bool   `json:"fingerprint_changed,omitempty"`
	Synthetic          bool   `json:"synthetic,omitempty"`
}

const hostStatsVersion = 1

// statsPrefix starts the registry keys of host statistics; run records
// never contain a dot.
const statsPrefix = "stats."

func statsKey(run, host string) string { return statsPrefix + run + "." + RunID(host) }

// PutHostStats stores a host's running totals for a run.
func (r *Registry) PutHostStats(ctx context.Context, run string, s HostStats) error {
	s.V = hostStatsVersion
	b, _ := json.Marshal(s) // cannot fail: plain fields
	if _, err := r.kv.Put(ctx, statsKey(run, s.Host), b); err != nil {
		return fmt.Errorf("run registry: host stats of %s: %w", run, err)
	}
	return nil
}

// HostStats returns every host's totals for a run; unreadable entries go
// to bad.
func (r *Registry) HostStats(ctx context.Context, run string, bad func(error)) ([]HostStats, error) {
	lister, err := r.kv.ListKeysFiltered(ctx, statsPrefix+run+".*")
	if err != nil {
		return nil, fmt.Errorf("run registry: host stats of %s: %w", run, err)
	}
	defer lister.Stop()
	var out []HostStats
	for key := range lister.Keys() {
		e, err := r.kv.Get(ctx, key)
		if err != nil {
			continue // deleted meanwhile
		}
		var s HostStats
		if err := json.Unmarshal(e.Value(), &s); err != nil || s.V != hostStatsVersion || s.Calls < 0 || s.CacheHits < 0 || s.AnswersReused < 0 || s.Retries < 0 ||
			s.Prefetch != nil && (s.Prefetch.Done < 0 || s.Prefetch.Planned < s.Prefetch.Done) {
			if bad != nil {
				bad(fmt.Errorf("%w: host stats %s", ErrBadMessage, key))
			}
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// ClearHostStats forgets every host's totals for a run (a run started
// again counts its own traffic).
func (r *Registry) ClearHostStats(ctx context.Context, run string) error {
	lister, err := r.kv.ListKeysFiltered(ctx, statsPrefix+run+".*")
	if err != nil {
		return fmt.Errorf("run registry: host stats of %s: %w", run, err)
	}
	defer lister.Stop()
	for key := range lister.Keys() {
		if err := r.kv.Purge(ctx, key); err != nil {
			return fmt.Errorf("run registry: host stats of %s: %w", run, err)
		}
	}
	return nil
}
