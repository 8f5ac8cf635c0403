package questionnaires

import "github.com/society-sim/society/values"

// The 19 values of the refined theory (Schwartz et al., 2012, "Refining the
// theory of basic individual values", JPSP 103(4), 663-688), in their order
// around the circle, with the basic value each refines.
//
// Two refined values are not subdivisions of one basic value, so their
// mapping is a choice:
//
//   - Face (FAC) lies between power and security on the refined circle. It is
//     mapped to Power: in the ten-value instruments, concern for one's public
//     image is measured by a Power item (the SVS item "preserving my public
//     image"), and face shares power's self-enhancing, social-esteem goal.
//   - Humility (HUM) lies between conformity and benevolence/universalism. It
//     is mapped to Tradition: in the ten-value instruments humility and
//     modesty are measured by Tradition items (the PVQ-40 portrait of being
//     humble and modest, item 38, and the SVS item "humble").
var refined = []struct {
	code, name string
	basic      values.Value
}{
	{"SDT", "Self-Direction Thought", values.SelfDirection},
	{"SDA", "Self-Direction Action", values.SelfDirection},
	{"ST", "Stimulation", values.Stimulation},
	{"HE", "Hedonism", values.Hedonism},
	{"AC", "Achievement", values.Achievement},
	{"POD", "Power Dominance", values.Power},
	{"POR", "Power Resources", values.Power},
	{"FAC", "Face", values.Power},
	{"SEP", "Security Personal", values.Security},
	{"SES", "Security Societal", values.Security},
	{"TR", "Tradition", values.Tradition},
	{"COR", "Conformity Rules", values.Conformity},
	{"COI", "Conformity Interpersonal", values.Conformity},
	{"HUM", "Humility", values.Tradition},
	{"UNN", "Universalism Nature", values.Universalism},
	{"UNC", "Universalism Concern", values.Universalism},
	{"UNT", "Universalism Tolerance", values.Universalism},
	{"BEC", "Benevolence Caring", values.Benevolence},
	{"BED", "Benevolence Dependability", values.Benevolence},
}

// RefinedToBasic maps a refined value code (exact, upper case) to the basic
// value it belongs to; see the package's refined table for Face and
// Humility. ok is false for any other string.
func RefinedToBasic(code string) (v values.Value, ok bool) {
	for _, r := range refined {
		if r.code == code {
			return r.basic, true
		}
	}
	return values.None, false
}
