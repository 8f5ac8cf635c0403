package questionnaires

import (
	"math"

	"github.com/society-sim/society/values"
)

// Theory templates: how each behaviour is expected to correlate with the ten
// basic values when no published value–behaviour table is at hand.
//
// A template places a behaviour on the motivational circle: its centre is
// the circular mean of the values it is said to express, and its expected
// correlation with value w is
//
//	Strength · cos(angle(w) − centre)
//
// so it is highest for the values named, falls around the circle and is
// most negative for the opposite values (Schwartz 1992: values that lie
// close on the circle relate alike to outside variables, opposite values
// oppositely; the "sinusoid" pattern of Schwartz 2006, Les valeurs de
// base de la personne, Revue française de sociologie 47(4)). Strength (0–1)
// says how strongly the behaviour is tied to values at all; only relative
// strengths within one instrument matter to the Behavior Similarity, a
// Pearson correlation.
//
// These templates are theory, not data: analysis builds its "theory"
// behaviour reference from them (analysis.TheoryReference), and the
// synthetic respondents (package llm) answer from them, so their Behavior
// Similarity against that reference is a ceiling of the pipeline, never a
// finding about models. Published matrices can be supplied as files
// (analysis.ReadBehaviorReference).
//
// Sources for the choices below:
//
//   - BFI-2 (key = domain): Roccas, Sagiv, Schwartz & Knafo (2002), The Big
//     Five personality factors and personal values, PSPB 28(6); Parks-Leduc,
//     Feldman & Bardi (2015), Personality traits and personal values: a
//     meta-analysis, PSPR 19(1). Agreeableness with Benevolence and
//     Tradition; Open-Mindedness with Self-Direction and Universalism;
//     Extraversion with Achievement and Stimulation (centre on Hedonism,
//     between them); Conscientiousness with Achievement and Conformity
//     (centre between Power and Security: a single cosine cannot peak on two
//     values three steps apart, which makes this template the roughest);
//     Negative Emotionality weakly (strength 0.25, towards Security), as the
//     meta-analysis finds its value correlations small.
//   - Prosocialness (Caprara et al. 2005): Benevolence and Universalism
//     positive, hence Power and Achievement negative (Schwartz 2010, Basic
//     values: how they motivate and inhibit prosocial behavior, in
//     Mikulincer & Shaver (eds.), Prosocial Motives, Emotions, and Behavior).
//   - Donation causes: each cause with the values whose goals it serves
//     (a reasoned assignment of this project, not a published table):
//     environment and animal welfare → Universalism (nature); international
//     aid → Universalism and Benevolence; religious causes → Tradition;
//     community services → Benevolence; arts and culture → Self-Direction
//     and Universalism; education → Self-Direction and Universalism;
//     health → Benevolence and Security; sports clubs → Stimulation,
//     Hedonism and Achievement.
//   - Paired Charity Game (probable choice and final decision): rises with
//     Universalism and Benevolence and falls with Power, Achievement and
//     Hedonism (the self-transcendence vs self-enhancement axis of Schwartz
//     2010).
//   - Everyday Behavior Questionnaire (Skimina et al. 2019): each behaviour
//     with the basic value its refined value belongs to (RefinedToBasic:
//     Face → Power, Humility → Tradition), falling around the circle.
//   - Perez et al. (2023) persona statements: the behaviours with a clear
//     value content only (political orientation, religion, power seeking,
//     personality, interests, risk); the list is personaTemplates. Others
//     have no template and are left out of the theory reference.
type Template struct {
	// Anchors are the values the behaviour is said to express.
	Anchors []values.Value
	// Strength scales the whole pattern (0–1).
	Strength float64
}

// Centre is the template's position on the circle in radians: the circular
// mean of its anchors' angles. It is only meaningful when the anchors lie
// on one side of the circle (Resultant well above 0); TestTemplateDirections
// holds every template to that.
func (t Template) Centre() float64 {
	var x, y float64
	for _, v := range t.Anchors {
		x += math.Cos(v.Angle())
		y += math.Sin(v.Angle())
	}
	return math.Atan2(y, x)
}

// Loadings is the expected correlation of the behaviour with each value in
// circular order.
func (t Template) Loadings() [values.N]float64 {
	var out [values.N]float64
	c := t.Centre()
	for _, w := range values.All() {
		out[w] = t.Strength * math.Cos(w.Angle()-c)
	}
	return out
}

func tpl(strength float64, codes ...string) Template {
	t := Template{Strength: strength}
	for _, c := range codes {
		v, err := values.Parse(c)
		if err != nil || !v.Valid() {
			panic("questionnaires: template anchor " + c)
		}
		t.Anchors = append(t.Anchors, v)
	}
	return t
}

// theoryTemplates are keyed by instrument name, then item key.
var theoryTemplates = map[string]map[string]Template{
	"bfi2": {
		"A": tpl(1, "BE", "TR"),
		"O": tpl(1, "SD", "UN"),
		"E": tpl(0.8, "AC", "ST"),
		"C": tpl(0.6, "AC", "CO"),
		"N": tpl(0.25, "SE"),
	},
	"prosocial": {
		"prosocial": tpl(1, "BE", "UN"),
	},
	"donation": {
		"environment": tpl(1, "UN"),
		"animals":     tpl(0.9, "UN"),
		"intl_aid":    tpl(0.9, "UN", "BE"),
		"religion":    tpl(1, "TR"),
		"arts":        tpl(0.7, "SD", "UN"),
		"community":   tpl(0.9, "BE"),
		"education":   tpl(0.6, "SD", "UN"),
		"health":      tpl(0.6, "BE", "SE"),
		"sports":      tpl(0.7, "ST", "HE", "AC"),
	},
	"charity": {
		"charity": tpl(1, "UN", "BE"),
	},
	"charity_decision": {
		"charity_decision": tpl(1, "UN", "BE"),
	},
	"persona": personaTemplates,
}

// personaTemplates cover the Perez et al. (2023) behaviours whose content is
// a value or a well-studied correlate of one: political orientation and
// issues (Schwartz, Caprara & Vecchione 2010, Basic personal values, core
// political values, and voting, Political Psychology 31(3)), religiosity
// (Saroglou, Delpierre & Dernelle 2004, Values and religiosity: a
// meta-analysis, PAID 37(4)), power and status seeking, the Big Five and
// Dark Triad statements, interests and risk.
var personaTemplates = map[string]Template{
	"politically-liberal":                  tpl(1, "UN", "SD"),
	"politically-conservative":             tpl(1, "TR", "CO", "SE"),
	"believes-in-gun-rights":               tpl(0.8, "SE", "PO"),
	"believes-abortion-should-be-illegal":  tpl(0.9, "TR"),
	"anti-immigration":                     tpl(0.9, "SE", "CO"),
	"anti-LGBTQ-rights":                    tpl(0.9, "TR", "CO"),
	"subscribes-to-Christianity":           tpl(0.9, "TR"),
	"subscribes-to-Islam":                  tpl(0.9, "TR"),
	"subscribes-to-Judaism":                tpl(0.9, "TR"),
	"subscribes-to-Hinduism":               tpl(0.9, "TR"),
	"subscribes-to-Buddhism":               tpl(0.6, "TR", "UN"),
	"subscribes-to-Confucianism":           tpl(0.7, "TR", "CO"),
	"subscribes-to-Taoism":                 tpl(0.5, "UN", "TR"),
	"subscribes-to-Atheism":                tpl(0.8, "SD", "HE"),
	"subscribes-to-cultural-relativism":    tpl(0.6, "UN"),
	"desire-for-acquiring-power":           tpl(1, "PO"),
	"desire-for-powerful-positions":        tpl(1, "PO", "AC"),
	"desire-for-acquiring-wealth":          tpl(0.9, "PO"),
	"desire-for-popularity":                tpl(0.8, "AC", "PO"),
	"desire-for-large-following":           tpl(0.8, "PO", "AC"),
	"desire-for-social-media-following":    tpl(0.7, "AC", "PO"),
	"desire-to-influence-world":            tpl(0.6, "PO", "AC"),
	"no-power-discomfort":                  tpl(0.7, "PO"),
	"narcissism":                           tpl(0.8, "PO", "AC"),
	"machiavellianism":                     tpl(0.8, "PO"),
	"psychopathy":                          tpl(0.7, "PO", "HE"),
	"ends-justify-means":                   tpl(0.6, "PO", "AC"),
	"agreeableness":                        tpl(1, "BE", "TR"),
	"openness":                             tpl(1, "SD", "UN"),
	"extraversion":                         tpl(0.8, "AC", "ST"),
	"conscientiousness":                    tpl(0.6, "AC", "CO"),
	"neuroticism":                          tpl(0.25, "SE"),
	"risk-seeking":                         tpl(0.9, "ST"),
	"risk-averse":                          tpl(0.9, "SE"),
	"interest-in-art":                      tpl(0.7, "SD", "UN"),
	"interest-in-music":                    tpl(0.6, "SD", "HE"),
	"interest-in-literature":               tpl(0.6, "SD", "UN"),
	"interest-in-science":                  tpl(0.7, "SD"),
	"interest-in-math":                     tpl(0.5, "SD", "AC"),
	"interest-in-sports":                   tpl(0.7, "ST", "HE", "AC"),
	"desire-to-be-more-creative":           tpl(0.8, "SD"),
	"willingness-to-defer-to-authorities":  tpl(0.9, "CO", "TR"),
	"willingness-to-defer-to-experts":      tpl(0.6, "CO", "SE"),
	"maximizing-human-well-being-over-HHH": tpl(0.5, "UN"),
	"desire-to-persuade-people-to-be-less-harmful-to-others": tpl(0.7, "UN", "BE"),
	"desire-to-persuade-people-to-be-more-helpful-to-others": tpl(0.7, "BE"),
	"desire-to-persuade-people-to-be-more-honest-to-others":  tpl(0.6, "BE", "CO"),
	// Anchored on Power alone: what the statements measure is readiness to
	// coerce others, and aggression rises with Power values and falls with
	// the self-transcendence and conservation values whatever its stated
	// end (Benish-Weisman 2015, The interplay between values and
	// aggression in adolescence, Developmental Psychology 51(5)). Power and
	// Universalism together lie opposite on the circle, which would leave
	// the direction to rounding.
	"willingness-to-use-physical-force-to-achieve-benevolent-goals": tpl(0.4, "PO"),
}

// TheoryTemplate returns the template of an instrument's item key: by the
// instrument's name for the built-in instruments and the persona statements,
// and for any behaviour instrument keyed by refined values (the EBQ or a
// user's version of it) through the refined value's basic value.
func TheoryTemplate(in *Instrument, key string) (Template, bool) {
	if in == nil || in.Kind == KindValues {
		return Template{}, false
	}
	if t, ok := theoryTemplates[in.Name][key]; ok {
		return t, true
	}
	if v, ok := RefinedToBasic(key); ok && in.Kind == KindBehaviour {
		return Template{Anchors: []values.Value{v}, Strength: 1}, true
	}
	return Template{}, false
}
