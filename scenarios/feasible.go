package scenarios

import (
	"fmt"
	"strings"

	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// A scenario that parses can still promise results it cannot give: the
// analysis scores an agent on a value instrument only when every one of the
// ten values has an answered item (and centres the scores on the mean of
// those items, MRAT), scores an agent on any other instrument only when
// every key of it has an answered item, and relates every other instrument
// to the agents' value scores. A run of such a scenario would spend its
// model calls and end with empty tables and figures; feasible refuses it
// before, saying what to change.

// askedInstrument is one [[questionnaires]] entry as parsed: its table, the
// entry, and the instrument when it is known before the run (nil for the
// persona statements, which are read from their data set, and for an entry
// already refused).
type askedInstrument struct {
	t    table
	q    Questionnaire
	inst *questionnaires.Instrument
}

func (d *decoder) feasible(asked []askedInstrument) {
	hasValues, known := false, true
	for _, a := range asked {
		switch {
		case a.inst != nil && a.inst.Kind == questionnaires.KindValues:
			hasValues = true
		case a.q.Name == "", a.inst == nil && (a.q.Name != questionnaires.PersonaName || a.q.File != ""):
			known = false
		}
		if a.q.Name == questionnaires.PersonaName && a.q.File == "" {
			if _, ok := a.t.m["items"]; ok {
				d.add(a.t.field("items"), "does not apply to the persona statements, whose items are read from the data set at run time: "+
					"keeping the first N would leave behaviours without a statement; choose fewer with statements (per behaviour) and behaviors")
			}
		}
		if a.inst == nil {
			continue
		}
		if a.q.File != "" {
			d.valueCodedFile(a)
		}
		if a.q.Items > 0 {
			d.itemsCover(a)
		}
	}
	if hasValues || !known {
		return
	}
	for _, a := range asked {
		field := a.t.field("name")
		if _, named := a.t.m["name"]; !named {
			field = a.t.field("file")
		}
		d.add(field, "%s is analysed by correlating its scores with the agents' value scores, but no questionnaire of the scenario measures values, "+
			"so its value–behaviour tables and figures would be empty; add [[questionnaires]] name = %q (or a values instrument file)",
			a.q.Name, DefaultInstrument)
	}
}

// itemsCover refuses an items count that leaves a key of the instrument
// without an item. For a value instrument that is a value, and then no
// agent has a score (nor an MRAT-centred one); for any other instrument
// no agent has a score on every key, which its value–behaviour correlation
// needs.
func (d *decoder) itemsCover(a askedInstrument) {
	in, n := a.inst, a.q.Items
	kept := map[string]bool{}
	for _, it := range in.Items[:n] {
		kept[it.Key] = true
	}
	var missing []string
	least := 0
	seen := map[string]bool{}
	for i, it := range in.Items {
		if !seen[it.Key] {
			seen[it.Key] = true
			least = i + 1
			if !kept[it.Key] {
				missing = append(missing, it.Key)
			}
		}
	}
	if len(missing) == 0 {
		return
	}
	what := fmt.Sprintf("no agent would have a score on every key of %s, so its value–behaviour tables and figures would be empty", in.Name)
	if in.Kind == questionnaires.KindValues {
		what = "no agent would have a score for every value (nor the MRAT-centred scores, which need them all), so every value table and figure would be empty"
	}
	d.add(a.t.field("items"), "keeps the first %d of the %d items of %s, which leave %s without an item: %s; "+
		"%s needs at least its first %d items (or leave items out)",
		n, len(in.Items), in.Name, strings.Join(missing, ", "), what, in.Name, least)
}

// valueCodedFile refuses a user instrument that is not of kind values but
// whose every key names a value without covering all ten: the analysis
// tells value instruments by their keys, so it would be scored as one and
// no agent would get a score.
func (d *decoder) valueCodedFile(a askedInstrument) {
	in := a.inst
	if in.Kind == questionnaires.KindValues || len(in.Items) == 0 {
		return
	}
	var covered [values.N]bool
	for _, it := range in.Items {
		v, err := values.Parse(it.Key)
		if err != nil || !v.Valid() {
			return
		}
		covered[v] = true
	}
	var missing []string
	for _, v := range values.All() {
		if !covered[v] {
			missing = append(missing, v.Code())
		}
	}
	if len(missing) == 0 {
		return
	}
	d.add(a.t.field("file"), "every item of %s is keyed by a value, so the analysis scores it as a values instrument, "+
		"which needs an item for each of the ten values (none for %s): no agent would be scored; "+
		"cover all ten with kind = \"values\", or key the items by what they measure (a behaviour, a trait)",
		in.Name, strings.Join(missing, ", "))
}
