package questionnaires

import (
	"fmt"
	"math"
)

// index precomputes the key and facet tables. Parse calls it once; the
// scoring methods then never allocate beyond their results.
func (in *Instrument) index() {
	in.keys, in.keyIndex = distinct(in.Items, func(it Item) string { return it.Key })
	in.facets, in.facetIndex = distinct(in.Items, func(it Item) string { return it.Facet })
	in.valueKeys = make([]int, len(in.Items))
	for i, it := range in.Items {
		in.valueKeys[i] = basicIndex(it.Key)
	}
}

// tables returns the precomputed tables, or computes them for an
// instrument built by hand rather than loaded (without storing them, so
// that concurrent readers never race).
func (in *Instrument) tables() *Instrument {
	if in.keyIndex != nil || len(in.Items) == 0 {
		return in
	}
	c := *in
	c.index()
	return &c
}

// distinct lists the non-empty values of field in first-appearance order
// and, per item, the index of its value in that list (-1 when empty).
func distinct(items []Item, field func(Item) string) ([]string, []int) {
	var list []string
	idx := make([]int, len(items))
	pos := map[string]int{}
	for i, it := range items {
		f := field(it)
		if f == "" {
			idx[i] = -1
			continue
		}
		j, ok := pos[f]
		if !ok {
			j = len(list)
			pos[f] = j
			list = append(list, f)
		}
		idx[i] = j
	}
	return list, idx
}

// basicIndex is the basic value an item key measures: a value code, or a
// refined value code mapped to its basic value; -1 otherwise.
func basicIndex(key string) int {
	if v, ok := valueCode(key); ok {
		return int(v)
	}
	if v, ok := RefinedToBasic(key); ok {
		return int(v)
	}
	return -1
}

// Keys returns the distinct item keys in order of first appearance. The
// slice is shared: do not modify it.
func (in *Instrument) Keys() []string { return in.tables().keys }

// KeyIndex returns the index in Keys of the key of Items[item].
func (in *Instrument) KeyIndex(item int) int { return in.tables().keyIndex[item] }

// ValueKeys returns, per item, the index (0..9, a values.Value) of the basic
// value its key measures, or -1. A key measures a basic value when it is a
// value code (SD ... UN) or a refined value code, mapped by RefinedToBasic,
// so that the EBQ's behaviours carry their basic value too. The slice is
// shared: do not modify it.
func (in *Instrument) ValueKeys() []int { return in.tables().valueKeys }

// Facets returns the distinct non-empty item facets in order of first
// appearance. The slice is shared: do not modify it.
func (in *Instrument) Facets() []string { return in.tables().facets }

// FacetIndex returns the index in Facets of the facet of Items[item], or -1
// when the item has no facet.
func (in *Instrument) FacetIndex(item int) int { return in.tables().facetIndex[item] }

// Recode returns answer x to Items[item] in the scored direction: a
// reverse-keyed answer becomes Min+Max-x. It does not check the scale.
func (in *Instrument) Recode(item, x int) int {
	if in.Items[item].Reverse {
		return in.Scale.Min + in.Scale.Max - x
	}
	return x
}

// Score returns the mean recoded answer per key, in Keys order. answers[i]
// answers Items[i]; an answer off the scale (0 on a 1-based scale, or
// Missing) is left out, a key without any valid answer scores NaN, and a
// slice shorter than Items leaves the rest missing.
func (in *Instrument) Score(answers []int) []float64 {
	t := in.tables()
	return t.score(make([]float64, len(t.keys)), answers, t.keyIndex)
}

// ScoreInto is Score writing into dst, which is grown as needed and
// returned, so that scoring many respondents need not allocate.
func (in *Instrument) ScoreInto(dst []float64, answers []int) []float64 {
	t := in.tables()
	return t.score(resize(dst, len(t.keys)), answers, t.keyIndex)
}

// ScoreFacets returns the mean recoded answer per facet, in Facets order,
// with the conventions of Score. Items without a facet are left out.
func (in *Instrument) ScoreFacets(answers []int) []float64 {
	t := in.tables()
	return t.score(make([]float64, len(t.facets)), answers, t.facetIndex)
}

// Mean returns the mean of the valid answers as given, without reverse
// recoding: the respondent's overall use of the scale (for the PVQ, the
// MRAT used to centre value scores). NaN when no answer is valid.
func (in *Instrument) Mean(answers []int) float64 {
	in.checkLen(answers)
	sum, n := 0, 0
	for _, x := range answers {
		if in.Scale.Valid(x) {
			sum += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return float64(sum) / float64(n)
}

func (in *Instrument) score(dst []float64, answers []int, group []int) []float64 {
	in.checkLen(answers)
	// Counts live on the stack for instruments of up to 64 groups.
	var buf [64]int
	var counts []int
	if len(dst) <= len(buf) {
		counts = buf[:len(dst)]
	} else {
		counts = make([]int, len(dst))
	}
	for i := range dst {
		dst[i] = 0
	}
	lo, hi := in.Scale.Min, in.Scale.Max
	for i, x := range answers {
		g := group[i]
		if g < 0 || x < lo || x > hi {
			continue
		}
		if in.Items[i].Reverse {
			x = lo + hi - x
		}
		dst[g] += float64(x)
		counts[g]++
	}
	for g, n := range counts {
		if n == 0 {
			dst[g] = math.NaN()
		} else {
			dst[g] /= float64(n)
		}
	}
	return dst
}

// checkLen panics on more answers than items: that is a caller's bug, never
// a respondent's answer.
func (in *Instrument) checkLen(answers []int) {
	if len(answers) > len(in.Items) {
		panic(fmt.Sprintf("questionnaires: %d answers for the %d items of %s", len(answers), len(in.Items), in.Name))
	}
}

func resize(dst []float64, n int) []float64 {
	if cap(dst) < n {
		return make([]float64, n)
	}
	return dst[:n]
}

// Clone returns a deep copy that the caller may modify. After changing its
// items, call Validate to check them and rebuild the key tables.
func (in *Instrument) Clone() *Instrument {
	c := &Instrument{
		Name: in.Name, Title: in.Title, Citation: in.Citation, Adapted: in.Adapted,
		Kind: in.Kind, Instruction: in.Instruction,
		Scale: Scale{Min: in.Scale.Min, Max: in.Scale.Max, Labels: append([]string(nil), in.Scale.Labels...)},
		Items: append([]Item(nil), in.Items...),
	}
	c.index()
	return c
}
