package analysis

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// Inference around every similarity (METHODS.md, "Inference: bootstrap,
// null and paired comparisons"):
//
//   - the 95% interval is the percentile interval of a bootstrap that
//     resamples the whole population with replacement, each persona keeping
//     its count (BootstrapPopulation), or the study's App. G resamples of a
//     fixed number of agents (BootstrapPaper), labelled so in every output;
//   - the p-value is a permutation p-value against a null without value
//     structure: p = (1 + #{null ≥ observed}) / (B + 1);
//   - a random-responder baseline gives the similarity of people answering
//     every item uniformly at random;
//   - strategies, and models, are compared on the same resamples (a paired
//     bootstrap), since strategies share agents.

// Bootstrap methods (scenario key analysis.bootstrap).
const (
	BootstrapPopulation = "population"
	BootstrapPaper      = "paper"
)

// minPaperP is the smallest p-value of the study's t-test written: below
// it the t distribution's tail underflows.
const minPaperP = 1e-300

// RandomIterations is the most random-responder populations drawn per
// baseline: enough for its mean and 95% interval to two decimals.
const RandomIterations = 200

// Prob is a probability in results.json: written with six significant
// digits and never rounded to 0 (a p-value of 3e-9 stays 3e-9); NaN is
// null.
type Prob float64

// MarshalJSON writes null for NaN and infinities.
func (p Prob) MarshalJSON() ([]byte, error) {
	f := float64(p)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 6, 64), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Prob) UnmarshalJSON(b []byte) error {
	var n Num
	err := n.UnmarshalJSON(b)
	*p = Prob(n)
	return err
}

// BootstrapInfo is results.json's `bootstrap`: how the intervals and
// p-values of the run were computed.
type BootstrapInfo struct {
	// Method is BootstrapPopulation or BootstrapPaper.
	Method string `json:"method"`
	// Iterations is the number of resamples, ResampleSize the agents per
	// resample for BootstrapPaper (0: the whole population).
	Iterations   int    `json:"iterations"`
	ResampleSize int    `json:"resample_size"`
	Interval     string `json:"interval"`
	// Null describes the permutation null, NullIterations its
	// permutations; PValueResolution = 1/(NullIterations+1) is the
	// smallest p-value it can give.
	Null             string `json:"null"`
	NullIterations   int    `json:"null_iterations"`
	PValueResolution Prob   `json:"p_value_resolution"`
	// RandomIterations is the number of random-responder populations
	// behind each baseline.
	RandomIterations int    `json:"random_iterations"`
	Label            string `json:"label"`
}

// Info describes the study's inference settings.
func (st *Study) Info() BootstrapInfo {
	bi := BootstrapInfo{Method: st.bootstrapMethod(), Iterations: st.BootstrapIterations, Interval: "bias-corrected percentile (BC), widened to hold the whole-population figure when it lies outside",
		Null:           "permutation: each item's answers shuffled across the agents (values similarity); the behaviour scores shuffled across the agents against their value scores (behaviour similarity)",
		NullIterations: st.NullIterations, PValueResolution: Prob(1 / float64(st.NullIterations+1)),
		RandomIterations: min(st.NullIterations, RandomIterations)}
	if bi.Method == BootstrapPaper {
		bi.ResampleSize, bi.Interval = st.BootstrapSize, "percentile"
		bi.Label = "the study's bootstrap (App. G): " + strconv.Itoa(st.BootstrapIterations) + " resamples of " +
			strconv.Itoa(st.BootstrapSize) + " agents; its intervals are those of a " + strconv.Itoa(st.BootstrapSize) +
			"-agent figure, not of the whole population's"
	} else {
		bi.Label = "whole-population bootstrap: " + strconv.Itoa(st.BootstrapIterations) +
			" resamples of all agents with replacement, each persona keeping its count"
	}
	if st.NullIterations <= 0 {
		bi.Null, bi.PValueResolution = "none", Prob(math.NaN())
	}
	return bi
}

func (st *Study) bootstrapMethod() string {
	if st.Bootstrap == BootstrapPaper {
		return BootstrapPaper
	}
	return BootstrapPopulation
}

// resampler draws the bootstrap resamples of every strategy of a pool. The
// resample of iteration b depends only on the seed and b, never on the
// model, instrument or reference, so that every figure of a run is
// computed on the same resamples and differences between them are paired.
type resampler struct {
	pool   *population.Pool
	seed   uint64
	paper  bool
	size   int
	byRank [values.N + 1][]int // each persona's agent ids, by rank
}

// Streams of the resamples and nulls, apart from every other stream of the
// seed.
const (
	resampleStream = 0x7265_7361 // "resa"
	nullStream     = 0x6e75_6c6c // "null"
	randomStream   = 0x7261_6e64 // "rand"
)

func (st *Study) resampler() *resampler {
	r := &resampler{pool: st.Pool, seed: st.Seed, paper: st.bootstrapMethod() == BootstrapPaper, size: st.BootstrapSize}
	for a, v := range st.Pool.Persona {
		i := population.Index(v)
		r.byRank[i] = append(r.byRank[i], a)
	}
	return r
}

// draw appends iteration b's resample of strategy si (agent ids, with
// repeats) to dst.
//
// Whole population: for each persona the strategy holds c agents of (its
// first c by rank), drawn c times with replacement. The draws come from one
// stream per persona and iteration shared by all strategies, each strategy
// keeping the first c draws below c: each strategy's resample is uniform
// over its own agents, and strategies sharing agents share draws, as they
// share answers.
//
// Paper: BootstrapSize draws uniformly with replacement among the
// strategy's agents, again as the first of a stream shared by all
// strategies.
func (r *resampler) draw(b, si int, dst []int) []int {
	m := r.pool.Strategies[si]
	if r.paper {
		if r.size <= 0 || r.pool.StrategySize(si) == 0 {
			return dst
		}
		rng := rand.New(rand.NewPCG(r.seed^resampleStream, uint64(b)))
		n := r.pool.Size()
		for got := 0; got < r.size; {
			a := rng.IntN(n)
			if r.pool.In(si, a) {
				dst = append(dst, a)
				got++
			}
		}
		return dst
	}
	for i, c := range m.Counts {
		ids := r.byRank[i]
		c = min(c, len(ids))
		if c == 0 {
			continue
		}
		rng := rand.New(rand.NewPCG(r.seed^resampleStream, uint64(b)*(values.N+1)+uint64(i)))
		for got := 0; got < c; {
			k := rng.IntN(len(ids))
			if k < c {
				dst = append(dst, ids[k])
				got++
			}
		}
	}
	return dst
}

// parallel calls fn(i) for every i in [0, n), spread over the cores in
// contiguous blocks; fn must only write to its own i. It stops early and
// returns ctx's error when ctx is done.
func parallel(ctx context.Context, n int, fn func(i int)) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * n / workers; i < (w+1)*n/workers; i++ {
				if ctx.Err() != nil {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// nanSlice is n NaNs: a statistic not (yet) computed.
func nanSlice(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// finite is xs without NaNs.
func finite(xs []float64) []float64 {
	out := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	return out
}

// Summary is a distribution's mean and 2.5th and 97.5th percentiles.
type Summary struct {
	Mean float64
	CI95 [2]float64
	N    int // finite values
}

// Summarise is the mean and percentile interval of the finite xs (linear
// interpolation between order statistics, R's type 7, NumPy's default);
// NaN figures when there are none.
func Summarise(xs []float64) Summary {
	f := finite(xs)
	if len(f) == 0 {
		nan := math.NaN()
		return Summary{Mean: nan, CI95: [2]float64{nan, nan}}
	}
	s := Summary{N: len(f)}
	for _, x := range f {
		s.Mean += x
	}
	s.Mean /= float64(len(f))
	slices.Sort(f)
	s.CI95 = [2]float64{percentile(f, 0.025), percentile(f, 0.975)}
	return s
}

// PermutationP is the one-sided permutation p-value of observed against
// the finite values of null: (1 + #{null ≥ observed}) / (B + 1), B the
// number of finite values (Phipson & Smyth 2010, "Permutation p-values
// should never be zero", Stat. Appl. Genet. Mol. Biol. 9:39, eq. 2 without
// their correction for repeated permutations). The +1 counts the observed
// data as one of the permutations, so p is never below 1/(B+1), its
// resolution. NaN when observed is NaN or the null has no finite value.
func PermutationP(observed float64, null []float64) (p, resolution float64) {
	f := finite(null)
	if math.IsNaN(observed) || len(f) == 0 {
		return math.NaN(), math.NaN()
	}
	ge := 0
	for _, x := range f {
		if x >= observed {
			ge++
		}
	}
	b := float64(len(f))
	return (1 + float64(ge)) / (b + 1), 1 / (b + 1)
}

// pairedDifference is the bootstrap interval of a − b from their paired
// bootstrap values (same index, same resample), over the resamples where
// both are finite.
func pairedDifference(a, b []float64) Summary {
	d := make([]float64, 0, len(a))
	for i := range min(len(a), len(b)) {
		if !math.IsNaN(a[i]) && !math.IsNaN(b[i]) {
			d = append(d, a[i]-b[i])
		}
	}
	return Summarise(d)
}

// permuteInto fills perm with a uniformly random permutation of 0..len-1
// (Fisher–Yates; the index j is Lemire's multiply-shift of a 64-bit draw,
// whose bias, below len/2⁶⁴, no run can see).
func permuteInto(rng *rand.Rand, perm []int) {
	for i := range perm {
		perm[i] = i
	}
	for i := len(perm) - 1; i > 0; i-- {
		hi, _ := bits.Mul64(rng.Uint64(), uint64(i+1))
		j := int(hi)
		perm[i], perm[j] = perm[j], perm[i]
	}
}

// usedCenterings lists which value scores (raw, MRAT-centred) the references
// compare with, so that only those are accumulated.
func usedCenterings(refs []Reference) (raw, mrat bool) {
	for _, r := range refs {
		if r.Centering == "raw" {
			raw = true
		} else {
			mrat = true
		}
	}
	return raw, mrat
}

// valueNull is the permutation null of Values Similarity for the agents
// members of a value sheet: in each permutation every item's answers are
// shuffled across the members, independently item by item, and the
// members re-scored. That keeps every item's distribution of answers and
// destroys the covariance within a person, of which value structure is
// made. It returns, per reference, the similarity of each permutation
// (NaN when degenerate).
func valueNull(ctx context.Context, method MDSMethod, sh *Sheet, keyOf, members []int, refs []Reference, iterations int, seed uint64) ([][]float64, error) {
	out := make([][]float64, len(refs))
	for ri := range refs {
		out[ri] = nanSlice(iterations)
	}
	n, m := len(keyOf), len(members)
	if m < 3 || iterations <= 0 {
		return out, nil
	}
	err := parallel(ctx, iterations, func(j int) {
		rng := rand.New(rand.NewPCG(seed, uint64(j)))
		perm := make([]int, m)
		codes := make([]uint8, m*n)
		for i := range n {
			permuteInto(rng, perm)
			for k, src := range perm {
				codes[k*n+i] = sh.Codes[members[src]*n+i]
			}
		}
		sims := similaritiesOfCodes(method, codes, keyOf, m, refs)
		for ri := range refs {
			out[ri][j] = sims[ri]
		}
	})
	return out, err
}

// similaritiesOfCodes scores m respondents' answer codes (row-major, one
// row of len(keyOf) codes per respondent) and returns their Values
// Similarity to each reference.
func similaritiesOfCodes(method MDSMethod, codes []uint8, keyOf []int, m int, refs []Reference) []float64 {
	n := len(keyOf)
	raw, mrat := NewCorrAccumulator(values.N), NewCorrAccumulator(values.N)
	useRaw, useMRAT := usedCenterings(refs)
	var r, c [values.N]float64
	for k := range m {
		if ValueScores(keyOf, codes[k*n:(k+1)*n], r[:], c[:]) {
			if useRaw {
				raw.Add(r[:])
			}
			if useMRAT {
				mrat.Add(c[:])
			}
		}
	}
	out := make([]float64, len(refs))
	for ri, ref := range refs {
		acc := mrat
		if ref.Centering == "raw" {
			acc = raw
		}
		s, err := ValuesSimilarityBy(method, acc.Corr(), ref.R)
		if err != nil {
			s = math.NaN()
		}
		out[ri] = s
	}
	return out
}

// randomCodes fills codes with answers drawn uniformly from the scale of
// each asked item (code 1..points), leaving the others 0 (not asked).
func randomCodes(rng *rand.Rand, codes []uint8, asked []bool, points int) {
	n := len(asked)
	for k := range codes {
		if asked[k%n] {
			codes[k] = uint8(1 + rng.IntN(points))
		} else {
			codes[k] = 0
		}
	}
}

// askedItems marks the items of a sheet that were asked.
func askedItems(sh *Sheet) []bool {
	asked := make([]bool, len(sh.Instrument.Items))
	for _, i := range sh.Items {
		asked[i] = true
	}
	return asked
}

// randomBaseline caches random-responder baselines: they depend only on
// the instruments and the number of agents, which strategies and models
// often share.
type randomBaseline struct {
	mu       sync.Mutex
	values   map[string][][]float64 // instrument, agents → per reference, per population
	behavior map[string][][]float64 // instruments, items, agents → per reference, per population
}

// valueRandom is the Values Similarity to each reference of
// populations of m random responders: every asked item answered uniformly
// on its scale.
func (st *Study) valueRandom(ctx context.Context, sh *Sheet, keyOf []int, m int, refs []Reference) ([][]float64, error) {
	key := sh.Instrument.Name + "\x00" + strconv.Itoa(m)
	st.random.mu.Lock()
	if st.random.values == nil {
		st.random.values = map[string][][]float64{}
	}
	got, ok := st.random.values[key]
	st.random.mu.Unlock()
	if ok {
		return got, nil
	}
	iterations := min(st.NullIterations, RandomIterations)
	out := make([][]float64, len(refs))
	for ri := range refs {
		out[ri] = nanSlice(iterations)
	}
	if m < 3 || iterations <= 0 {
		return out, nil
	}
	asked, points := askedItems(sh), sh.Instrument.Scale.Points()
	seed := hash64(sh.Instrument.Name, strconv.Itoa(m))
	err := parallel(ctx, iterations, func(j int) {
		rng := rand.New(rand.NewPCG(st.Seed^randomStream, seed+uint64(j)))
		codes := make([]uint8, m*len(keyOf))
		randomCodes(rng, codes, asked, points)
		sims := similaritiesOfCodes(st.mdsMethod(), codes, keyOf, m, refs)
		for ri := range refs {
			out[ri][j] = sims[ri]
		}
	})
	if err != nil {
		return nil, err
	}
	st.random.mu.Lock()
	st.random.values[key] = out
	st.random.mu.Unlock()
	return out, nil
}

// behaviorRandom is the Behavior Similarity to each reference of
// populations of m random responders answering both the value sheet and
// the behaviour sheet uniformly at random.
func (st *Study) behaviorRandom(ctx context.Context, vs *Sheet, keyOf []int, bsh *Sheet, m int, cols []int,
	refs []BehaviorReference, refCols [][]int) ([][]float64, error) {
	// The references of an instrument are the same for every model and
	// strategy, so the baseline depends only on the instruments, the
	// items asked and the number of agents.
	key := fmt.Sprint(vs.Instrument.Name, "\x00", bsh.Instrument.Name, "\x00", vs.Items, "\x00", bsh.Items, "\x00", m)
	st.random.mu.Lock()
	if st.random.behavior == nil {
		st.random.behavior = map[string][][]float64{}
	}
	got, ok := st.random.behavior[key]
	st.random.mu.Unlock()
	if ok && len(got) == len(refs) {
		return got, nil
	}
	iterations := min(st.NullIterations, RandomIterations)
	out := make([][]float64, len(refs))
	for ri := range refs {
		out[ri] = nanSlice(iterations)
	}
	if m < 3 || iterations <= 0 {
		return out, nil
	}
	in := bsh.Instrument
	vAsked, bAsked := askedItems(vs), askedItems(bsh)
	seed := hash64(vs.Instrument.Name, in.Name, strconv.Itoa(m))
	err := parallel(ctx, iterations, func(j int) {
		rng := rand.New(rand.NewPCG(st.Seed^randomStream, seed+uint64(j)))
		vc := make([]uint8, m*len(keyOf))
		randomCodes(rng, vc, vAsked, vs.Instrument.Scale.Points())
		bc := make([]uint8, m*len(in.Items))
		randomCodes(rng, bc, bAsked, in.Scale.Points())
		x := make([][values.N]float64, m)
		y := make([][]float64, m)
		answers := make([]int, len(in.Items))
		var raw [values.N]float64
		ok := make([]int, 0, m)
		n := len(keyOf)
		for k := range m {
			good := ValueScores(keyOf, vc[k*n:(k+1)*n], raw[:], x[k][:])
			for i := range answers {
				answers[i] = questionnaires.Missing
				if c := bc[k*len(in.Items)+i]; c != 0 {
					answers[i] = int(c) - 1 + in.Scale.Min
				}
			}
			y[k] = in.Score(answers)
			for _, v := range y[k] {
				good = good && !math.IsNaN(v)
			}
			if good {
				ok = append(ok, k)
			}
		}
		vb := ValueBehaviorCorrelation(x, y, ok, cols)
		for ri, ref := range refs {
			if s, err := BehaviorSimilarity(columns(vb, refCols[ri]), ref.M); err == nil {
				out[ri][j] = s
			}
		}
	})
	if err != nil {
		return nil, err
	}
	st.random.mu.Lock()
	st.random.behavior[key] = out
	st.random.mu.Unlock()
	return out, nil
}

// behaviorNull is the permutation null of Behavior Similarity: in each
// permutation the members' behaviour scores are shuffled across the
// members against their value scores, which keeps both instruments' own
// structure and destroys the link between a person's values and
// behaviour.
func behaviorNull(ctx context.Context, x [][values.N]float64, y [][]float64, members, cols []int,
	refs []BehaviorReference, refCols [][]int, iterations int, seed uint64) ([][]float64, error) {
	out := make([][]float64, len(refs))
	for ri := range refs {
		out[ri] = nanSlice(iterations)
	}
	m := len(members)
	if m < 3 || iterations <= 0 {
		return out, nil
	}
	err := parallel(ctx, iterations, func(j int) {
		rng := rand.New(rand.NewPCG(seed, uint64(j)))
		perm := make([]int, m)
		permuteInto(rng, perm)
		iy := make([]int, m)
		for k, p := range perm {
			iy[k] = members[p]
		}
		vb := valueBehaviorCorr(x, y, members, iy, cols)
		for ri, ref := range refs {
			if s, err := BehaviorSimilarity(columns(vb, refCols[ri]), ref.M); err == nil {
				out[ri][j] = s
			}
		}
	})
	return out, err
}

// drawKey names a similarity row: its measure ("values" or "behavior"),
// model, strategy, instrument and reference.
type drawKey struct{ measure, model, strategy, instrument, reference string }

func (o *Outcome) keep(k drawKey, draws []float64) {
	if o.draws == nil {
		o.draws = map[drawKey][]float64{}
	}
	o.draws[k] = draws
}

// fill sets a row's bootstrap summary, null and baseline.
// With the whole-population bootstrap the interval is the bias-corrected
// percentile interval around observed, widened to hold observed; with the study's resamples of
// fewer agents it is their plain percentile interval, as in the study.
func fill(paper bool, observed float64, boot, null, random []float64) (mean Num, ci [2]Num, inf Inference) {
	b := Summarise(boot)
	if !paper {
		b.CI95 = ReportedInterval(observed, boot)
	}
	mean, ci = Num(b.Mean), [2]Num{Num(b.CI95[0]), Num(b.CI95[1])}
	p, res := PermutationP(observed, null)
	nl, rd := Summarise(null), Summarise(random)
	_, tp := TTestOneSample(finite(boot), 0)
	if !math.IsNaN(tp) {
		// Far in the tail Student's survival function underflows to 0;
		// the figure is then below 1e-300, written as that.
		tp = math.Max(tp, minPaperP)
	}
	inf = Inference{PValue: Prob(p), PValueResolution: Prob(res),
		NullMean: Num(nl.Mean), NullCI95: [2]Num{Num(nl.CI95[0]), Num(nl.CI95[1])},
		RandomMean: Num(rd.Mean), RandomCI95: [2]Num{Num(rd.CI95[0]), Num(rd.CI95[1])},
		PValuePaperTTest: Prob(tp)}
	return mean, ci, inf
}

// valueRows adds the Values Similarity rows of one value sheet and strategy
// (pool member si, reported as name), one per reference.
func (st *Study) valueRows(ctx context.Context, rs *resampler, sh *Sheet, keyOf []int, sc *Scores, si int, name string,
	refs []Reference, out *Outcome) error {
	members := make([]int, 0, st.Pool.StrategySize(si))
	for a := range sc.OK {
		if st.Pool.In(si, a) && sc.OK[a] {
			members = append(members, a)
		}
	}
	// The bootstrap: references that centre scores alike share each
	// resample's matrix.
	boot := make([][]float64, len(refs))
	for ri := range refs {
		boot[ri] = nanSlice(st.BootstrapIterations)
	}
	useRaw, useMRAT := usedCenterings(refs)
	err := parallel(ctx, st.BootstrapIterations, func(b int) {
		idx := rs.draw(b, si, nil)
		raw, mrat := NewCorrAccumulator(values.N), NewCorrAccumulator(values.N)
		for _, a := range idx {
			if sc.OK[a] {
				if useRaw {
					raw.Add(sc.Raw[a][:])
				}
				if useMRAT {
					mrat.Add(sc.MRAT[a][:])
				}
			}
		}
		corr := map[string]*mat.SymDense{}
		for ri, ref := range refs {
			m, ok := corr[ref.Centering]
			if !ok {
				acc := mrat
				if ref.Centering == "raw" {
					acc = raw
				}
				m = acc.Corr()
				corr[ref.Centering] = m
			}
			if s, err := ValuesSimilarityBy(st.mdsMethod(), m, ref.R); err == nil {
				boot[ri][b] = s
			}
		}
	})
	if err != nil {
		return err
	}
	null, err := valueNull(ctx, st.mdsMethod(), sh, keyOf, members, refs, st.NullIterations,
		st.Seed^nullStream^hash64(sh.Model, name, sh.Instrument.Name))
	if err != nil {
		return err
	}
	random, err := st.valueRandom(ctx, sh, keyOf, len(members), refs)
	if err != nil {
		return err
	}
	models := map[string]*mat.SymDense{}
	for ri, ref := range refs {
		rows := sc.MRAT
		if ref.Centering == "raw" {
			rows = sc.Raw
		}
		model, ok := models[ref.Centering]
		if !ok {
			model = corrOf(rows, members)
			models[ref.Centering] = model
		}
		vr := ValueStructureRow{Model: sh.Model, Strategy: name, Reference: ref.Name,
			Instrument: sh.Instrument.Name, Agents: len(members)}
		human, fitted, sim, err := MDSMapBy(st.mdsMethod(), model, ref.R)
		if err != nil {
			vr.ValuesSimilarity = Num(math.NaN())
		} else {
			vr.ValuesSimilarity = Num(sim)
			if ri == 0 {
				out.Maps = append(out.Maps, ValueMap{Model: sh.Model, Strategy: name, Reference: ref.Name,
					Human: human, Fitted: fitted, Similarity: sim})
			}
		}
		vr.BootstrapMean, vr.CI95, vr.Inference = fill(rs.paper, float64(vr.ValuesSimilarity), boot[ri], null[ri], random[ri])
		out.keep(drawKey{"values", sh.Model, name, sh.Instrument.Name, ref.Name}, boot[ri])
		out.Results.ValueStructure = append(out.Results.ValueStructure, vr)
	}
	return nil
}

// ComparisonRow is a paired comparison: the difference A − B of a
// similarity between two strategies (Factor "strategy", for one model) or
// two models (Factor "model", under one strategy), with the percentile
// interval of its paired bootstrap: both figures computed on the same
// resamples of agents, so that the agents two strategies share, or the
// persona counts two models share, count once.
type ComparisonRow struct {
	// Measure is "values_similarity" or "behavior_similarity".
	Measure    string `json:"measure"`
	Factor     string `json:"factor"`
	A          string `json:"a"`
	B          string `json:"b"`
	Model      string `json:"model,omitempty"`
	Strategy   string `json:"strategy,omitempty"`
	Instrument string `json:"instrument"`
	Reference  string `json:"reference"`
	// Difference is A's whole-population figure minus B's; CI95 the 2.5th
	// and 97.5th percentiles of the paired bootstrap differences, of
	// which there are Resamples.
	Difference Num    `json:"difference"`
	CI95       [2]Num `json:"ci95"`
	Resamples  int    `json:"resamples"`
}

// comparisons pairs every strategy with the baseline strategy (uniform
// when the run has it, else the first) for each model, and every model
// with the first model under each strategy, for every instrument and
// reference.
func (o *Outcome) comparisons(st *Study) []ComparisonRow {
	out := []ComparisonRow{}
	type row struct {
		key drawKey
		obs float64
	}
	var rows []row
	for _, r := range o.Results.ValueStructure {
		rows = append(rows, row{drawKey{"values", r.Model, r.Strategy, r.Instrument, r.Reference}, float64(r.ValuesSimilarity)})
	}
	for _, r := range o.Results.ValueBehavior {
		rows = append(rows, row{drawKey{"behavior", r.Model, r.Strategy, r.Instrument, r.Reference}, float64(r.BehaviorSimilarity)})
	}
	obs := map[drawKey]float64{}
	var strategies, models []string
	for _, r := range rows {
		obs[r.key] = r.obs
		strategies = appendNew(strategies, r.key.strategy)
		models = appendNew(models, r.key.model)
	}
	baseStrategy := ""
	if len(strategies) > 0 {
		baseStrategy = strategies[0]
	}
	if slices.Contains(strategies, string(population.Uniform)) {
		baseStrategy = string(population.Uniform)
	}
	measure := map[string]string{"values": "values_similarity", "behavior": "behavior_similarity"}
	add := func(factor string, a, b drawKey) {
		da, okA := o.draws[a]
		db, okB := o.draws[b]
		if !okA || !okB {
			return
		}
		d := pairedDifference(da, db)
		cr := ComparisonRow{Measure: measure[a.measure], Factor: factor, Instrument: a.instrument, Reference: a.reference,
			Difference: Num(obs[a] - obs[b]), CI95: [2]Num{Num(d.CI95[0]), Num(d.CI95[1])}, Resamples: d.N}
		if factor == "strategy" {
			cr.A, cr.B, cr.Model = a.strategy, b.strategy, a.model
		} else {
			cr.A, cr.B, cr.Strategy = a.model, b.model, a.strategy
		}
		out = append(out, cr)
	}
	for _, r := range rows {
		if r.key.strategy != baseStrategy {
			b := r.key
			b.strategy = baseStrategy
			add("strategy", r.key, b)
		}
	}
	if len(models) > 1 {
		for _, r := range rows {
			if r.key.model != models[0] {
				b := r.key
				b.model = models[0]
				add("model", r.key, b)
			}
		}
	}
	return out
}

// ReportedInterval is the 95% interval a row of the whole-population
// bootstrap reports: the BC interval of boot around observed, widened to
// hold observed. A similarity near its bound of 1 can lie above every
// resample (any noise lowers it), and the BC quantiles cannot reach beyond
// the resamples.
func ReportedInterval(observed float64, boot []float64) [2]float64 {
	ci := BCInterval(observed, boot, 0.025)
	if !math.IsNaN(observed) && !math.IsNaN(ci[0]) {
		ci = [2]float64{math.Min(ci[0], observed), math.Max(ci[1], observed)}
	}
	return ci
}

// BCInterval is the bias-corrected percentile interval (Efron 1982, The
// Jackknife, the Bootstrap and Other Resampling Plans, §10.7; Efron &
// Tibshirani 1993, An Introduction to the Bootstrap, eq. 14.10 with
// acceleration 0) of level 1 − 2·alpha from the finite bootstrap values
// boot of a statistic observed as observed:
//
//	z0 = Φ⁻¹(#{θ* < θ̂} / B),  α1 = Φ(2·z0 + z_alpha),  α2 = Φ(2·z0 + z_(1−alpha)),
//
// and the interval is the α1 and α2 quantiles of boot (linear
// interpolation, as Summarise). It corrects the median bias of a statistic
// that resampling noise pulls one way, as it pulls every similarity
// towards 0. When every bootstrap value lies on one side of θ̂, z0 is
// infinite; the proportion is then clamped to [1/(2B), 1 − 1/(2B)].
// NaN when there is no finite value.
func BCInterval(observed float64, boot []float64, alpha float64) [2]float64 {
	f := finite(boot)
	if len(f) == 0 || math.IsNaN(observed) {
		return [2]float64{math.NaN(), math.NaN()}
	}
	slices.Sort(f)
	below := 0
	for _, x := range f {
		if x < observed {
			below++
		}
	}
	b := float64(len(f))
	prop := math.Min(math.Max(float64(below)/b, 1/(2*b)), 1-1/(2*b))
	norm := distuv.UnitNormal
	z0 := norm.Quantile(prop)
	a1 := norm.CDF(2*z0 + norm.Quantile(alpha))
	a2 := norm.CDF(2*z0 + norm.Quantile(1-alpha))
	return [2]float64{percentile(f, a1), percentile(f, a2)}
}

// appendNew appends s to list unless list holds it, keeping first-seen order.
func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
