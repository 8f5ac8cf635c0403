package scenarios

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// Unrelated refuses the questionnaires whose answers nothing would relate
// to the values: an instrument other than a values instrument is analysed
// only against a reference, its theory template (questionnaires.
// TheoryTemplate of one of its keys, which analysis.TheoryReference builds
// the reference from: the built-in instruments, the persona behaviours and
// refined-value keys) or a published matrix the scenario gives, and one
// with neither would run and leave no value–behaviour row or figure. It
// reads the instrument files the scenario names, so validate and run call
// it after Load, each problem located like Load's. The persona statements
// are checked when their behaviours are listed; otherwise they are known
// only at run time.
func Unrelated(sc *Scenario) error {
	var errs []error
	for i, q := range sc.Questionnaires {
		in, ok := instrumentToRelate(q)
		if !ok || in.Kind == questionnaires.KindValues || valueKeyed(in) {
			continue
		}
		if hasTheory(in) {
			continue
		}
		if slices.ContainsFunc(sc.Analysis.BehaviorReferences, func(r BehaviorReference) bool { return r.Instrument == q.Name }) {
			continue
		}
		what := fmt.Sprintf("none of its keys (%s) has a theory template", joinKeys(in.Keys()))
		if q.Name == questionnaires.PersonaName && q.File == "" {
			what = "none of its behaviours has a theory template"
		}
		errs = append(errs, sc.Problem(fmt.Sprintf("questionnaires[%d].name", i), fmt.Sprintf(
			"%s would be answered but never related to the values: %s and no [[analysis.behavior_references]] names it, "+
				"so it would have no value–behaviour table or figure; add a published value × behaviour matrix for it "+
				"(instrument = %q), or key its items by refined values (kind = \"behaviour\")",
			q.Name, what, q.Name)))
	}
	return errors.Join(errs...)
}

// instrumentToRelate is the instrument of a questionnaire as the analysis
// sees its keys; ok is false when they are not known before the run.
func instrumentToRelate(q Questionnaire) (*questionnaires.Instrument, bool) {
	switch {
	case q.File != "":
		in, err := questionnaires.Load(q.File)
		return in, err == nil
	case q.Name == questionnaires.PersonaName:
		if len(q.Behaviors) == 0 {
			return nil, false
		}
		in := &questionnaires.Instrument{Name: questionnaires.PersonaName, Kind: questionnaires.KindBehaviour}
		for j, b := range q.Behaviors {
			in.Items = append(in.Items, questionnaires.Item{ID: j + 1, Text: b, Key: b})
		}
		return in, true
	}
	in, err := questionnaires.Builtin(q.Name)
	return in, err == nil
}

// hasTheory reports whether some key of in has a theory template: then
// analysis.TheoryReference gives the instrument a reference.
func hasTheory(in *questionnaires.Instrument) bool {
	return slices.ContainsFunc(in.Keys(), func(k string) bool {
		_, ok := questionnaires.TheoryTemplate(in, k)
		return ok
	})
}

// valueKeyed reports whether every key of in names a value: the analysis
// scores such an instrument as a values instrument (scenarios refuses one
// that does not cover all ten).
func valueKeyed(in *questionnaires.Instrument) bool {
	for _, it := range in.Items {
		if v, err := values.Parse(it.Key); err != nil || !v.Valid() {
			return false
		}
	}
	return len(in.Items) > 0
}

func joinKeys(keys []string) string {
	const show = 6
	if len(keys) <= show {
		return strings.Join(keys, ", ")
	}
	return strings.Join(keys[:show], ", ") + fmt.Sprintf(" and %d more", len(keys)-show)
}
