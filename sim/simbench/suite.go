package simbench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Note heads every report: what the figures are about.
const Note = "SYNTHETIC RESPONDENTS (a generative psychometric model, not a language model): these are figures about the program, never about models."

// Part is a section of the report that another harness measures (the model
// path, the model calls): it is encoded in the JSON report as it is, and
// writes its own text.
type Part interface {
	WriteText(w io.Writer)
}

// Rate is the raw transport's rate for messages of one size: core NATS
// publish/subscribe, and JetStream through a memory stream.
type Rate struct {
	MsgsPerSecond          float64
	BytesPerSecond         float64
	JetStreamMsgsPerSecond float64
}

// Suite is a whole bench run: for each population size in Agents the child
// runs of Options, and the raw transport for the run's answer messages;
// then the model path and the model calls. A part in Skip, or whose
// harness is nil, is left out.
type Suite struct {
	Options
	Agents []int
	// MessageSize is the wire size in bytes of one answer batch of a run
	// of agents cut into shards, each answering the PVQ-40.
	MessageSize func(agents, shards int) int
	// Transport measures the raw bus for messages of size bytes, sending
	// at least messages of them.
	Transport func(ctx context.Context, size, messages int) (Rate, error)
	// ModelPath measures the model path, and its efficiency that every
	// row repeats.
	ModelPath func(ctx context.Context) (p Part, efficiency float64, err error)
	// Calls counts the model calls of the study's design.
	Calls func(ctx context.Context) (Part, error)
}

// Report is the whole bench run. Its top level repeats the row of the
// largest population, so that `bench --agents N --json` reads as one row.
type Report struct {
	Row
	Note      string  `json:"note"`
	Machine   Machine `json:"machine"`
	Runs      []Row   `json:"runs"`
	ModelPath Part    `json:"model_path,omitempty"`
	Calls     Part    `json:"model_calls,omitempty"`
}

// Run measures every part of s that is not skipped, one after the other,
// and reports them with the machine they ran on. The first error stops it.
func (s Suite) Run(ctx context.Context) (*Report, error) {
	if s.Log == nil {
		s.Log = io.Discard
	}
	rep := &Report{Note: Note, Machine: ReadMachine()}
	populations := s.Agents
	if s.Skip[Pipeline] && s.Skip[NoBus] && s.Skip[NATS] {
		populations = nil // nothing measured per population
	}
	for _, n := range populations {
		row, err := s.population(ctx, n)
		if err != nil {
			return nil, err
		}
		rep.Runs = append(rep.Runs, row)
	}
	if !s.Skip[Model] && s.ModelPath != nil {
		mp, eff, err := s.ModelPath(ctx)
		if err != nil {
			return nil, err
		}
		rep.ModelPath = mp
		for i := range rep.Runs {
			rep.Runs[i].ModelPathEfficiency = eff
		}
		rep.ModelPathEfficiency = eff
	}
	if !s.Skip[Calls] && s.Calls != nil {
		fmt.Fprintln(s.Log, "bench: model calls of the study's design, checked against the model server")
		c, err := s.Calls(ctx)
		if err != nil {
			return nil, err
		}
		rep.Calls = c
	}
	rep.Machine.LoadAfter = LoadAverage()
	if len(rep.Runs) > 0 {
		rep.Row = LargestRun(rep.Runs)
	}
	return rep, nil
}

// population measures one population size: the child runs, then the raw
// transport for the run's answer messages.
func (s Suite) population(ctx context.Context, n int) (Row, error) {
	row, err := Population(ctx, s.Options, n)
	if err != nil {
		return row, err
	}
	if s.MessageSize != nil {
		row.MessageBytes = s.MessageSize(n, row.Shards)
	}
	row.Messages = row.Shards * PVQItems
	if s.Skip[NATS] || s.Transport == nil {
		return row, nil
	}
	fmt.Fprintf(s.Log, "bench: %d agents, raw NATS and JetStream for %d messages of %d bytes\n", n, row.Messages, row.MessageBytes)
	r, err := s.Transport(ctx, row.MessageBytes, row.Messages)
	if err != nil {
		return row, err
	}
	row.NATSMsgsPerSecond, row.NATSBytesPerSecond = r.MsgsPerSecond, r.BytesPerSecond
	row.NATSSeconds = float64(row.Messages) / r.MsgsPerSecond
	row.JetStreamMsgsPerSecond = r.JetStreamMsgsPerSecond
	row.JetStreamSeconds = float64(row.Messages) / r.JetStreamMsgsPerSecond
	return row, nil
}

// LargestRun is the row of the largest population (the first of equals);
// runs must not be empty.
func LargestRun(runs []Row) Row {
	best := runs[0]
	for _, r := range runs[1:] {
		if r.Agents > best.Agents {
			best = r
		}
	}
	return best
}

// ParseSizes reads comma-separated population sizes ("10_000,100000"),
// each at least 1; underscores group digits.
func ParseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.ReplaceAll(strings.TrimSpace(f), "_", "")
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a population size", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseSkip reads comma-separated part names (Parts) to leave out; blank
// names are ignored, and the names that are not parts are returned in
// unknown, in the order given.
func ParseSkip(s string) (skip map[string]bool, unknown []string) {
	skip = map[string]bool{}
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !slices.Contains(Parts, p) {
			unknown = append(unknown, p)
		}
		skip[p] = true
	}
	return skip, unknown
}
