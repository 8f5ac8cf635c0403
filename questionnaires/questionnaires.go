// Package questionnaires owns the instruments as data: items, answer scales
// with their labels, scoring keys and reverse keys, the loading of built-in
// and user-supplied instrument files and their writing back (Write, beside
// Parse), and the theory templates that place each behaviour item on the
// value circle (TheoryTemplate).
//
// Item wording of the built-in instruments is the project's own, written to
// be faithful to the construct and key of each item, and is marked as adapted.
// Official item files can be loaded from a user file in the same format.
//
// # File format
//
// An instrument is a TOML file, decoded strictly (an unknown key is an error):
//
//	name        = "pvq40"          # lowercase letters, digits, '-' and '_'
//	title       = "Portrait Values Questionnaire (40 items)"
//	citation    = "Schwartz et al. (2001) ..."
//	adapted     = true             # wording adapted from the cited original
//	kind        = "values"         # values | traits | behaviour | game
//	instruction = "..."
//
//	[scale]
//	min    = 1
//	max    = 6
//	labels = ["Not like me at all", ..., "Very much like me"]  # one per point
//
//	[[items]]
//	id      = 1                    # ids are 1..n, each once
//	text    = "..."
//	key     = "SD"                 # what the item measures
//	facet   = ""                   # optional finer key
//	reverse = false                # reverse-keyed item
//
// Errors name the file, the line and the field, and every problem of a file
// is reported at once. Item positions in error paths (items[3]) count from 0
// in file order; the line number is the surest guide.
//
// # Built-in instruments
//
// pvq40, bfi2, prosocial, donation, ebq, and the Paired Charity Game as two
// instruments: charity (the 7-point probable choice, key "charity") and
// charity_decision (the final binary decision, 1 keep or 2 donate, key
// "charity_decision"). They are parsed once and shared: see [Builtin].
//
// # Answers
//
// Answers are given per item in Items order (Items[i].ID == i+1 after
// loading). An answer counts when it lies on the scale, Min..Max; anything
// else is missing. Every built-in scale starts at 1 or 0, so 0 means missing
// on 1-based scales, and [Missing] (-1) means missing on every scale,
// including the EBQ's 0..4 frequency scale where 0 is the answer "never".
//
// It is a domain package: it must never import nats.go, go-openai,
// client_golang or an adapter package (bus, llm, metrics), nor analysis or
// results, which build on it.
package questionnaires

// Scale is an ordinal answer scale from Min to Max with one label per point.
type Scale struct {
	Min    int      `toml:"min" json:"min"`
	Max    int      `toml:"max" json:"max"`
	Labels []string `toml:"labels" json:"labels"`
}

// Points is the number of answer options.
func (s Scale) Points() int { return s.Max - s.Min + 1 }

// Label returns the label of answer x, or "" when x is off the scale.
func (s Scale) Label(x int) string {
	if x < s.Min || x > s.Max || x-s.Min >= len(s.Labels) {
		return ""
	}
	return s.Labels[x-s.Min]
}

// Valid reports whether x is an answer on the scale.
func (s Scale) Valid(x int) bool { return x >= s.Min && x <= s.Max }

// Missing is an answer that is off every scale: scale minimums are never
// negative.
const Missing = -1

// Kind says what an instrument measures, which decides how its keys are
// checked and how analysis uses its scores.
type Kind string

// The kinds of instrument.
const (
	// KindValues instruments key every item to a basic value code (SD ... UN)
	// and cover all ten values.
	KindValues Kind = "values"
	// KindTraits instruments measure personality traits (BFI-2).
	KindTraits Kind = "traits"
	// KindBehaviour instruments measure self-reported behaviour.
	KindBehaviour Kind = "behaviour"
	// KindGame instruments are decisions in an economic game.
	KindGame Kind = "game"
)

// Kinds returns the valid kinds.
func Kinds() []Kind { return []Kind{KindValues, KindTraits, KindBehaviour, KindGame} }

// Item is one question. Key names what the item measures (a value code for
// the PVQ, a domain for the BFI-2, a behaviour for behaviour instruments);
// Facet is an optional finer key; Reverse marks reverse-keyed items.
type Item struct {
	ID      int    `toml:"id" json:"id"`
	Text    string `toml:"text" json:"text"`
	Key     string `toml:"key" json:"key"`
	Facet   string `toml:"facet,omitempty" json:"facet,omitempty"`
	Reverse bool   `toml:"reverse,omitempty" json:"reverse,omitempty"`
}

// Instrument is a questionnaire: an instruction, a scale and items.
//
// Build one with [Parse], [Load] or [Builtin]: they validate it and
// precompute the key tables the scoring methods use on hot paths. The
// methods are safe for concurrent use as long as nobody modifies the
// instrument.
type Instrument struct {
	Name        string `toml:"name" json:"name"`
	Title       string `toml:"title" json:"title"`
	Citation    string `toml:"citation" json:"citation"`
	Adapted     bool   `toml:"adapted" json:"adapted"`
	Kind        Kind   `toml:"kind" json:"kind"`
	Instruction string `toml:"instruction" json:"instruction"`
	Scale       Scale  `toml:"scale" json:"scale"`
	Items       []Item `toml:"items" json:"items"`

	keys       []string
	keyIndex   []int
	valueKeys  []int
	facets     []string
	facetIndex []int
}
