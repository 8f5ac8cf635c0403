package progress

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/sim"
)

// Log writes a run's progress as lines, for a stderr that is not
// a terminal (a notebook, nohup, a batch job): one line every period with
// the phase, the answers done and expected, the rate and the time left,
// and one at once when the run moves on to analysing and writing, which
// take seconds on a large run and would otherwise look like a hang. With
// asJSON each line is one JSON object, for tools.
type Log struct {
	w      io.Writer
	asJSON bool
	every  time.Duration

	mu sync.Mutex
	st state
	// ctx is Start's: once it ends (the run interrupted) the counts of the
	// fetch ahead stay as they were, the requests answered by then.
	ctx context.Context
	// last is the last line written, its clock apart: a periodic line
	// saying the same again (the tick just after a step's own line) is
	// left out.
	last string

	// wmu keeps lines whole: the ticker and a stage change both write.
	wmu sync.Mutex
}

// state is what the next line says.
type state struct {
	Run      string // the scenario, or "calibration"
	Phase    string
	phase    int // phases begun
	phases   int
	start    time.Time
	answered time.Time // when the last answer came; zero before
	Done     int64
	Expected int64
	// stage is when the run moved on to the step named Phase after its
	// answers (analysing, writing results, ended); zero while answering.
	stage time.Time
	// pre is the fetch ahead of a phase's answers, under way while
	// prefetching (sim.PrefetchObserver), which began at preStart.
	pre         sim.Prefetching
	prefetching bool
	preStart    time.Time
	// rateFrom is when the answers' rate is measured from, rateDone the
	// answers in by then: the run's start, then the end of each fetch
	// ahead, during which few answers can come; averaged over it, the
	// rate would be too low and the time left absurd.
	rateFrom time.Time
	rateDone int64
}

// rateWindow is the time the answers' rate needs to be measured over: in
// less, a few answers (those the fetch ahead left ready) would give an
// absurd rate, and the rate and the time left are unknown.
const rateWindow = time.Second

// NewLog is a Log writing to w every period, as JSON objects when asJSON.
// The periodic lines begin with Start.
func NewLog(w io.Writer, asJSON bool, every time.Duration) *Log {
	return &Log{w: w, asJSON: asJSON, every: every}
}

// Start writes a line every period until stop is called; stop writes a
// last one, phase "interrupted" when ctx was cancelled (Ctrl-C) and
// "ended" otherwise, and returns once the writer's goroutine has exited.
func (p *Log) Start(ctx context.Context) (stop func()) {
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				p.tick()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			<-exited
			p.mu.Lock()
			started := !p.st.start.IsZero()
			p.mu.Unlock()
			if started {
				last := "ended"
				if ctx.Err() != nil {
					last = "interrupted"
				}
				p.stage(last)
			}
		})
	}
}

// Observer follows one run of the process; name labels its lines ("" is
// the scenario's name).
func (p *Log) Observer(name string) sim.Observer { return &runLog{p: p, name: name} }

// line writes the state as a line, when a run has begun. Once the
// answers are all in, or the run has moved on to a step after them, the
// line has no answer rate nor time left: only the step, how long it has
// taken so far and the time elapsed.
func (p *Log) line() { p.write(false) }

// tick writes the periodic line, unless it would say what the line before
// it said (a step's line written at once, the tick just after it).
func (p *Log) tick() { p.write(true) }

func (p *Log) write(periodic bool) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.mu.Lock()
	st := p.st
	p.mu.Unlock()
	if st.start.IsZero() {
		return
	}
	now := time.Now()
	el := now.Sub(st.start).Seconds()
	phase := st.Phase
	var rate, eta, stepEl *float64
	var req *requests
	answering := false
	switch {
	case !st.stage.IsZero():
		if phase != "ended" && phase != "interrupted" {
			stepEl = ptr(now.Sub(st.stage).Seconds())
		}
		if (phase == "interrupted" || phase == "ended") && st.pre.Expected > 0 {
			// The requests the last phase made (before the interrupt:
			// paid for although their answers are not all in), as
			// final, since no periodic line may have shown them.
			req = &requests{Done: st.pre.Done, Expected: st.pre.Expected}
		}
	case !st.answered.IsZero():
		// All answers in, the next step not yet begun: nothing is left
		// to estimate.
	default:
		answering = true
		if d := now.Sub(st.rateFrom); d >= rateWindow {
			r := float64(st.Done-st.rateDone) / d.Seconds()
			rate = &r
			if r > 0 && st.Done <= st.Expected {
				eta = ptr(float64(st.Expected-st.Done) / r)
			}
		}
		if st.prefetching {
			// The answers' rate and time left are measured from the end
			// of the fetch ahead: while it runs, answers come at its pace
			// and the rest at once when it ends.
			rate, eta = nil, nil
			phase = prefetchPhase(st.Phase)
			req = &requests{Done: st.pre.Done, Expected: st.pre.Expected}
			req.Rate = ptr(float64(req.Done) / max(now.Sub(st.preStart).Seconds(), 1e-9))
			if *req.Rate > 0 {
				req.ETA = ptr(float64(req.Expected-req.Done) / *req.Rate)
			}
		}
	}
	if p.asJSON {
		out := struct {
			Time     string    `json:"time"`
			Run      string    `json:"run"`
			Phase    string    `json:"phase"`
			Done     int64     `json:"done"`
			Expected int64     `json:"expected"`
			Rate     *float64  `json:"rate_per_second,omitempty"`
			ETA      *float64  `json:"eta_seconds,omitempty"`
			Elapsed  float64   `json:"elapsed_seconds"`
			PhaseEl  *float64  `json:"phase_elapsed_seconds,omitempty"`
			Requests *requests `json:"requests,omitempty"`
		}{now.UTC().Format(jsonTime), st.Run, phase, st.Done, st.Expected, rate, eta, el, stepEl, req}
		b, _ := json.Marshal(out)
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	clock, elapsed := now.UTC().Format("15:04:05"), seconds(el)
	var text string
	switch {
	case req != nil && req.Rate != nil:
		text = fmt.Sprintf("%s: %s: %d/%d requests answered (%.1f%%), %.0f/s, %s; %d/%d answers, %s elapsed",
			st.Run, phase, req.Done, req.Expected, 100*float64(req.Done)/float64(req.Expected),
			*req.Rate, left(req.ETA), st.Done, st.Expected, elapsed)
	case !answering:
		if stepEl != nil && seconds(*stepEl) > 0 {
			phase += " (" + seconds(*stepEl).String() + ")"
		}
		text = fmt.Sprintf("%s: %s: %d/%d answers, %s elapsed", st.Run, phase, st.Done, st.Expected, elapsed)
		if req != nil {
			text = fmt.Sprintf("%s: %s: %d/%d requests answered, %d/%d answers, %s elapsed", st.Run, phase, req.Done, req.Expected, st.Done, st.Expected, elapsed)
		}
	default:
		pct := 0.0
		if st.Expected > 0 {
			pct = 100 * float64(st.Done) / float64(st.Expected)
		}
		r := "rate unknown"
		if rate != nil {
			r = fmt.Sprintf("%.0f/s", *rate)
		}
		text = fmt.Sprintf("%s: %s: %d/%d answers (%.1f%%), %s, %s, %s elapsed",
			st.Run, phase, st.Done, st.Expected, pct, r, left(eta), elapsed)
	}
	if periodic && text == p.last {
		return
	}
	p.last = text
	fmt.Fprintf(p.w, "%s %s\n", clock, text)
}

// jsonTime is the time of a JSON line: RFC 3339 in UTC with milliseconds,
// as lines come more often than once a second (--progress-every 100ms).
const jsonTime = "2006-01-02T15:04:05.000Z07:00"

func ptr(f float64) *float64 { return &f }

// seconds is s seconds, rounded to the second.
func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Second)
}

// left says the time left, eta seconds (nil: unknown).
func left(eta *float64) string {
	if eta == nil {
		return "ETA unknown"
	}
	return "ETA " + (time.Duration(*eta) * time.Second).String()
}

// requests are the requests of the fetch ahead of a phase's answers, in a
// JSON line: answered (whoever made them) and planned, their rate per
// second and the seconds left, the last two left out when unknown (no
// request answered yet) and on the line of an interrupted run.
type requests struct {
	Done     int64    `json:"done"`
	Expected int64    `json:"expected"`
	Rate     *float64 `json:"rate_per_second,omitempty"`
	ETA      *float64 `json:"eta_seconds,omitempty"`
}

// prefetchPhase names the fetch ahead of the answering phase named
// answering ("answering" or "answering, phase 2/3").
func prefetchPhase(answering string) string {
	if rest, ok := strings.CutPrefix(answering, "answering"); ok {
		return "prefetching" + rest
	}
	return "prefetching"
}

// stage moves the run to a named step and says so at once.
func (p *Log) stage(name string) {
	p.mu.Lock()
	p.st.Phase, p.st.stage = name, time.Now()
	p.mu.Unlock()
	p.line()
}

// expectedAnswers are the answers run l expects, known before the first
// arrives (as the collector counts them: every agent answers every item
// of a plan), so that progress says so while the first requests, or
// those fetched ahead, are in flight; 0 when l has no study.
func expectedAnswers(l sim.Layout) int64 {
	var n int64
	if l.Plan == nil {
		return 0
	}
	if st := l.Plan.Study; st != nil && st.Pool != nil {
		for _, pl := range st.Plans {
			n += int64(st.Pool.Size()) * int64(len(pl.Items))
		}
	}
	return n
}

// runLog is one run's observer (sim.Observer and sim.Stager) of a Log:
// the runs of a process (the calibration, then the main run) share its
// lines.
type runLog struct {
	sim.NoObserver
	p    *Log
	name string
}

var (
	_ sim.Stager           = (*runLog)(nil)
	_ sim.PrefetchObserver = (*runLog)(nil)
)

func (r *runLog) Start(l sim.Layout) {
	name := r.name
	if name == "" {
		name = l.Name
	}
	r.p.mu.Lock()
	r.p.st = state{Run: name, Phase: "answering", phases: len(l.Plan.Phases), start: time.Now(), rateFrom: time.Now(), Expected: expectedAnswers(l)}
	r.p.mu.Unlock()
}

func (r *runLog) Phase(sim.PhaseStart) {
	r.p.mu.Lock()
	st := &r.p.st
	st.phase++
	st.pre, st.prefetching = sim.Prefetching{}, false // a phase's own fetch
	if st.phases > 1 {
		st.Phase = fmt.Sprintf("answering, phase %d/%d", st.phase, st.phases)
	}
	r.p.mu.Unlock()
}

func (r *runLog) Batch(_ *agent.Batch, n sim.Counts) {
	r.p.mu.Lock()
	r.p.st.Done, r.p.st.Expected = n.Valid+n.Invalid, n.Expected
	if r.p.st.Done >= n.Expected && r.p.st.answered.IsZero() {
		r.p.st.answered = time.Now()
	}
	r.p.mu.Unlock()
}

// Prefetch follows the fetch ahead of a phase's answers; the lines name
// it as a phase of its own, with its requests, until it is over.
func (r *runLog) Prefetch(pf sim.Prefetching) {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	if r.p.ctx != nil && r.p.ctx.Err() != nil {
		return // interrupted: the lines say the requests answered until then
	}
	st := &r.p.st
	if !st.prefetching && !pf.Ended {
		st.preStart = time.Now()
	}
	st.pre = pf
	was := st.prefetching
	st.prefetching = !pf.Ended && pf.Expected > 0 && pf.Done < pf.Expected
	if was && !st.prefetching {
		st.rateFrom, st.rateDone = time.Now(), st.Done // answering begins
	}
}

// Stage writes a line at once: the run has moved on to name.
func (r *runLog) Stage(name string) { r.p.stage(name) }
