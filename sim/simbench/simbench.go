// Package simbench measures whole runs of the engine: one population of the
// built-in scale scenario through the full pipeline, and through the no-bus
// baseline (the same engine over sim.Local), each in a fresh child process
// so that the peak memory and CPU time reported are that run's alone; and
// the machine the figures were taken on. It owns the bench run as a whole
// (Suite: every population, then the model path and the model calls) and
// its report, as JSON and as text.
//
// The caller builds the engine (Measure takes a constructor), the child
// process (Options.Child) and the other harnesses' parts (Suite's
// MessageSize, Transport, ModelPath and Calls), so the harness measures
// whatever cmd/society wires. simbench must not import nats.go, go-openai,
// client_golang, nor the adapter packages bus, llm and metrics, nor their
// harnesses busbench and llmbench.
package simbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/society-sim/society/sim"
)

// PVQItems is the PVQ-40's length: every bench agent answers all of it.
const PVQItems = 40

// Parts of a bench run, each of which Options.Skip can leave out: the
// whole pipeline and the no-bus baseline (child processes), the raw NATS
// transport, the model path and the model calls of the study's design.
const (
	Pipeline = "pipeline"
	NoBus    = "nobus"
	NATS     = "nats"
	Model    = "model"
	Calls    = "calls"
)

// Parts are the parts of a bench run in the order they run.
var Parts = []string{Pipeline, NoBus, NATS, Model, Calls}

// Options configures the child runs of Population.
type Options struct {
	Seed       uint64
	Skip       map[string]bool // Pipeline, NoBus: parts left out
	ProfileDir string          // CPU profiles of the children, when set
	Log        io.Writer       // a line per child run; nil drops them
	// Child makes the command that runs "bench --one N --part P --seed S
	// [--cpuprofile FILE]" (args) in a fresh process, which prints a
	// Result as JSON on its stdout.
	Child func(ctx context.Context, args []string) (*exec.Cmd, error)
}

// Row is one population size: the pipeline's figures, its no-bus
// baseline (both from Population) and the raw transport's figures for the
// same messages (from Suite.Run). Ratios above one mean the pipeline took
// longer.
type Row struct {
	Agents           int     `json:"agents"`
	Answers          int64   `json:"answers"`
	Shards           int     `json:"shards"`
	WallSeconds      float64 `json:"wall_seconds"`
	AnswersPerSecond float64 `json:"answers_per_second"`
	PeakRSSBytes     int64   `json:"peak_rss_bytes"`
	CPUSeconds       float64 `json:"cpu_seconds"`
	// AnswerSeconds runs from the start until every answer is collected
	// (agents started, tasks sent, answers stored and consumed);
	// FinishSeconds is the rest: analysis and the results directory.
	AnswerSeconds float64 `json:"answer_seconds"`
	FinishSeconds float64 `json:"finish_seconds"`

	NoBusSeconds       float64 `json:"nobus_seconds,omitempty"`
	NoBusAnswerSeconds float64 `json:"nobus_answer_seconds,omitempty"`
	NoBusPeakRSSBytes  int64   `json:"nobus_peak_rss_bytes,omitempty"`
	// BaselineRatio is the pipeline's wall time over the no-bus run's;
	// AnswerRatio compares the answer phases alone.
	BaselineRatio float64 `json:"baseline_ratio,omitempty"`
	AnswerRatio   float64 `json:"answer_ratio,omitempty"`
	// SameResults reports whether both runs wrote the same results.json.
	SameResults *bool `json:"same_results,omitempty"`

	// MessageBytes is the wire size of one answer batch of this run and
	// Messages the answer batches it sends.
	MessageBytes int `json:"message_bytes"`
	Messages     int `json:"messages"`
	// NATSMsgsPerSecond is the raw core NATS publish/subscribe rate for
	// messages of this run's size; NATSSeconds is the time the run's
	// messages take at that rate. JetStream* is the same through a memory
	// stream (acknowledged publish, then an ordered consumer).
	NATSMsgsPerSecond      float64 `json:"nats_msgs_per_second,omitempty"`
	NATSBytesPerSecond     float64 `json:"nats_bytes_per_second,omitempty"`
	NATSSeconds            float64 `json:"nats_seconds,omitempty"`
	JetStreamMsgsPerSecond float64 `json:"jetstream_msgs_per_second,omitempty"`
	JetStreamSeconds       float64 `json:"jetstream_seconds,omitempty"`

	// ModelPathEfficiency is the model path's (the same in every row):
	// sample mode's calls/s through the society client over S/L.
	ModelPathEfficiency float64 `json:"model_path_efficiency,omitempty"`
}

// Population measures n agents: the pipeline and the no-bus baseline, each
// in a child process, unless skipped.
func Population(ctx context.Context, o Options, n int) (Row, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	row := Row{Agents: n, Answers: int64(n) * PVQItems, Shards: sim.ShardCount(n, 0)}
	var pipe, nobus *Result
	if !o.Skip[Pipeline] {
		fmt.Fprintf(o.Log, "bench: %d agents, full pipeline (child process)\n", n)
		r, err := RunChild(ctx, o, n, Pipeline)
		if err != nil {
			return row, err
		}
		pipe = r
		row.WallSeconds, row.PeakRSSBytes, row.CPUSeconds = r.WallSeconds, r.PeakRSSBytes, r.CPUSeconds
		row.AnswerSeconds, row.FinishSeconds = r.AnswerSeconds, r.WallSeconds-r.AnswerSeconds
		row.Answers = r.Answers
		if r.WallSeconds > 0 {
			row.AnswersPerSecond = float64(r.Answers) / r.WallSeconds
		}
	}
	if !o.Skip[NoBus] {
		fmt.Fprintf(o.Log, "bench: %d agents, no bus (child process)\n", n)
		r, err := RunChild(ctx, o, n, NoBus)
		if err != nil {
			return row, err
		}
		nobus = r
		row.NoBusSeconds, row.NoBusAnswerSeconds, row.NoBusPeakRSSBytes = r.WallSeconds, r.AnswerSeconds, r.PeakRSSBytes
	}
	if pipe != nil && nobus != nil {
		if nobus.WallSeconds > 0 {
			row.BaselineRatio = pipe.WallSeconds / nobus.WallSeconds
		}
		if nobus.AnswerSeconds > 0 {
			row.AnswerRatio = pipe.AnswerSeconds / nobus.AnswerSeconds
		}
		same := pipe.ResultsSHA256 == nobus.ResultsSHA256
		row.SameResults = &same
	}
	return row, nil
}

// RunChild runs one measurement in a fresh process and adds the process's
// own accounting (peak RSS, CPU time) to what it reported.
func RunChild(ctx context.Context, o Options, n int, part string) (*Result, error) {
	args := []string{"bench", "--one", strconv.Itoa(n), "--part", part, "--seed", strconv.FormatUint(o.Seed, 10)}
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		args = append(args, "--cpuprofile", filepath.Join(o.ProfileDir, fmt.Sprintf("%s-%d.prof", part, n)))
	}
	cmd, err := o.Child(ctx, args)
	if err != nil {
		return nil, err
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("bench: %s run of %d agents: %w: %s", part, n, err, strings.TrimSpace(errb.String()))
	}
	var r Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("bench: %s run of %d agents: read its report: %w", part, n, err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.PeakRSSBytes = maxrssBytes(ru.Maxrss)
		r.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
	}
	if r.PeakRSSBytes == 0 {
		r.PeakRSSBytes = r.VmHWMBytes
	}
	return &r, nil
}

// maxrssBytes converts getrusage's ru_maxrss, which Linux gives in KiB.
func maxrssBytes(v int64) int64 {
	if runtime.GOOS == "darwin" {
		return v
	}
	return v << 10
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// Machine is what a figure needs to be read against.
type Machine struct {
	CPUs        int       `json:"cpus"`
	CPUModel    string    `json:"cpu_model"`
	MemoryBytes int64     `json:"memory_bytes"`
	GoVersion   string    `json:"go_version"`
	OS          string    `json:"os"`
	Kernel      string    `json:"kernel,omitempty"`
	LoadBefore  []float64 `json:"load_average_before,omitempty"`
	LoadAfter   []float64 `json:"load_average_after,omitempty"`
	Time        string    `json:"time"`
}

// ReadMachine describes this machine now, with its load average as
// LoadBefore.
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), MemoryBytes: sim.MemTotal(), GoVersion: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, LoadBefore: LoadAverage(), Time: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// LoadAverage reads the 1, 5 and 15 minute load averages; nil when unknown.
func LoadAverage() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b))
	var out []float64
	for i := 0; i < 3 && i < len(f); i++ {
		x, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return nil
		}
		out = append(out, x)
	}
	return out
}
