// Package population owns who is simulated: the population strategies of
// the study, the weights they put on each value prompt (and on the unprimed
// model), the apportionment of a population size into persona counts, the
// agent pool that lets several strategies share the same agents, and the
// human dominant-value shares and value means those strategies build on.
//
// It is a domain package: it must never import nats.go, go-openai,
// client_golang or an adapter package (bus, llm, metrics).
package population

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/society-sim/society/values"
)

// Strategy is a rule for weighting the ten value prompts and the unprimed
// model in a simulated population.
type Strategy string

// The strategies of the study, plus user weights.
const (
	// Uniform gives each value prompt 1/10 and the unprimed model nothing.
	Uniform Strategy = "uniform"
	// HNorm uses the human dominant-value split, dropping the people
	// without a dominant value and renormalising.
	HNorm Strategy = "h-norm"
	// HEven uses the human split for people with a dominant value and
	// spreads the no-dominant share evenly over the ten prompts.
	HEven Strategy = "h-even"
	// HNP uses the human split for people with a dominant value and lets
	// the unprimed model answer for the no-dominant share.
	HNP Strategy = "h-np"
	// ModelSpecific weights each prompt by how human-like the value
	// structure it produces is; it needs a model's own results.
	ModelSpecific Strategy = "model-specific"
	// Custom takes the weights from the user.
	Custom Strategy = "custom"
)

// Strategies returns every strategy, in the order the study presents them.
func Strategies() []Strategy {
	return []Strategy{Uniform, HNorm, HEven, HNP, ModelSpecific, Custom}
}

// ParseStrategy accepts a strategy name in any case.
func ParseStrategy(s string) (Strategy, error) {
	t := Strategy(strings.ToLower(strings.TrimSpace(s)))
	if slices.Contains(Strategies(), t) {
		return t, nil
	}
	names := make([]string, 0, 6)
	for _, st := range Strategies() {
		names = append(names, string(st))
	}
	return "", fmt.Errorf("unknown strategy %q (want one of %s)", s, strings.Join(names, ", "))
}

// Weights is a distribution over personas: index i < values.N is the prompt
// for values.Value(i) and index values.N is the unprimed model (values.None).
type Weights [values.N + 1]float64

// Index is the position of v in Weights and in persona counts.
func Index(v values.Value) int {
	if v == values.None {
		return values.N
	}
	return int(v)
}

// Persona is the value at position i of Weights and persona counts.
func Persona(i int) values.Value {
	if i == values.N {
		return values.None
	}
	return values.Value(i)
}

// Of returns the weight of persona v (values.None for the unprimed model).
func (w Weights) Of(v values.Value) float64 { return w[Index(v)] }

// StrategyWeights computes the weights of a fixed strategy from human shares.
// noDominant is the share of people without a dominant value used by H-Even
// and H-NP (DefaultNoDominant in the study); the split among the ten values
// always comes from sh. Custom and ModelSpecific need inputs of their own:
// use CustomWeights and ModelSpecificWeights.
func StrategyWeights(s Strategy, sh Shares, noDominant float64) (Weights, error) {
	var w Weights
	if math.IsNaN(noDominant) || noDominant < 0 || noDominant > 1 {
		return w, fmt.Errorf("strategy %s: no-dominant share must be between 0 and 1, got %v", s, noDominant)
	}
	var split [values.N]float64
	var sum float64
	for _, p := range sh.Dominant {
		if math.IsNaN(p) || p < 0 {
			return w, fmt.Errorf("strategy %s: shares %q: dominant shares must not be negative", s, sh.Source)
		}
		sum += p
	}
	if s != Uniform && s != Custom && s != ModelSpecific && !(sum > 0) {
		return w, fmt.Errorf("strategy %s: shares %q: nobody has a dominant value", s, sh.Source)
	}
	for i, p := range sh.Dominant {
		split[i] = p / sum
	}
	switch s {
	case Uniform:
		for i := range values.N {
			w[i] = 1.0 / values.N
		}
	case HNorm:
		copy(w[:values.N], split[:])
	case HEven:
		for i, p := range split {
			w[i] = p*(1-noDominant) + noDominant/values.N
		}
	case HNP:
		for i, p := range split {
			w[i] = p * (1 - noDominant)
		}
		w[values.N] = noDominant
	case Custom:
		return w, errors.New("strategy custom: weights come from the scenario; use CustomWeights")
	case ModelSpecific:
		return w, errors.New("strategy model-specific: weights come from a model's own value structure; use ModelSpecificWeights")
	default:
		_, err := ParseStrategy(string(s))
		return w, err
	}
	return w, nil
}

// WeightError is a problem with one key of a custom weight table. Key is
// empty for a problem with the table as a whole.
type WeightError struct {
	Key string
	Err error
}

func (e *WeightError) Error() string {
	if e.Key == "" {
		return "weights: " + e.Err.Error()
	}
	return fmt.Sprintf("weight %q: %v", e.Key, e.Err)
}

func (e *WeightError) Unwrap() error { return e.Err }

// CustomWeights builds weights from a table keyed by value code or name, or
// "none" for the unprimed model, and normalises them to sum to 1. Every
// problem is reported, each as a *WeightError, joined with errors.Join.
func CustomWeights(m map[string]float64) (Weights, error) {
	var w Weights
	var errs []error
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	seen := map[values.Value]string{}
	var sum float64
	for _, k := range keys {
		x := m[k]
		v, err := values.Parse(k)
		if err != nil {
			errs = append(errs, &WeightError{k, errors.New("unknown persona (want a value code or name, or none)")})
			continue
		}
		if prev, ok := seen[v]; ok {
			errs = append(errs, &WeightError{k, fmt.Errorf("same persona as %q", prev)})
			continue
		}
		seen[v] = k
		switch {
		case math.IsNaN(x) || math.IsInf(x, 0):
			errs = append(errs, &WeightError{k, fmt.Errorf("must be a finite number, got %v", x)})
			continue
		case x < 0:
			errs = append(errs, &WeightError{k, fmt.Errorf("must not be negative, got %v", x)})
			continue
		}
		w[Index(v)] = x
		sum += x
	}
	if len(errs) == 0 && !(sum > 0) {
		errs = append(errs, &WeightError{"", fmt.Errorf("must sum to more than 0, got %v", sum)})
	}
	if len(errs) > 0 {
		return Weights{}, errors.Join(errs...)
	}
	for i := range w {
		w[i] /= sum
	}
	return w, nil
}

// Fit names the measure of how human-like a value prompt's own value
// structure is, which the Model-Specific strategy weights prompts by.
type Fit string

const (
	// FitPearson is the study's rule (App. E): the Pearson correlation of
	// the vectorised lower triangles (diagonal excluded) of the prompt's
	// 10×10 value correlation matrix and the human one. The default.
	FitPearson Fit = "pearson"
	// FitValuesSimilarity is the prompt's Values Similarity (1 − Procrustes
	// disparity of the two MDS maps), in [0, 1].
	FitValuesSimilarity Fit = "values-similarity"
)

// Fits lists the fit measures, the default first.
func Fits() []Fit { return []Fit{FitPearson, FitValuesSimilarity} }

// ModelSpecificWeights weights each value prompt in proportion to its fit to
// the human value structure (a Fit measure), w_v = max(f_v, 0) / Σ max(f, 0):
// a prompt whose structure runs against the human one (a negative Pearson
// correlation) gets no agents, since a population share cannot be negative
// and such a prompt makes a population less human-like, not more. The
// unprimed model gets nothing. A NaN or infinite fit is an error; all fits
// at or below 0 is an error.
func ModelSpecificWeights(similarity [values.N]float64) (Weights, error) {
	var w Weights
	var sum float64
	for i, s := range similarity {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			return Weights{}, fmt.Errorf("model-specific weights: fit of %s is %v", values.Value(i), s)
		}
		w[i] = max(s, 0)
		sum += w[i]
	}
	if sum == 0 {
		return Weights{}, errors.New("model-specific weights: no value prompt has a positive fit")
	}
	for i := range w {
		w[i] /= sum
	}
	return w, nil
}

// Counts apportions size agents to personas by the largest-remainder method:
// each persona gets the whole part of its quota, and the agents left over go
// to the largest fractional parts, lower index first on ties. The result
// sums to size (0 for a non-positive size or all-zero weights) and depends on
// nothing but its inputs.
func Counts(w Weights, size int) [values.N + 1]int {
	var out [values.N + 1]int
	var sum float64
	for _, x := range w {
		if x > 0 && !math.IsInf(x, 0) {
			sum += x
		}
	}
	if size <= 0 || !(sum > 0) {
		return out
	}
	var rem [values.N + 1]float64
	given := 0
	for i, x := range w {
		if !(x > 0) || math.IsInf(x, 0) {
			continue
		}
		q := x / sum * float64(size)
		out[i] = int(math.Floor(q))
		rem[i] = q - float64(out[i])
		given += out[i]
	}
	order := make([]int, len(w))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case rem[a] > rem[b]:
			return -1
		case rem[a] < rem[b]:
			return 1
		}
		return 0
	})
	// The floors fall short by fewer agents than there are personas; the
	// modulo only guards against floating-point error in the quotas.
	for k := 0; given < size; k++ {
		i := order[k%len(order)]
		if w[i] > 0 {
			out[i]++
			given++
		}
	}
	return out
}

// Draw samples size agents' personas independently from w (a multinomial
// draw). The same rng state gives the same counts. Each agent costs one
// uniform number and a scan of eleven weights, which keeps even the largest
// allowed populations under a second or two.
func Draw(w Weights, size int, rng *rand.Rand) [values.N + 1]int {
	var out [values.N + 1]int
	var cum [values.N + 1]float64
	var sum float64
	for i, x := range w {
		if x > 0 && !math.IsInf(x, 0) {
			sum += x
		}
		cum[i] = sum
	}
	if size <= 0 || !(sum > 0) {
		return out
	}
	last := 0
	for i, x := range w {
		if x > 0 && !math.IsInf(x, 0) {
			last = i
		}
	}
	for range size {
		u := rng.Float64() * sum
		i := 0
		for i < last && (cum[i] <= u || !(w[i] > 0)) {
			i++
		}
		out[i]++
	}
	return out
}
