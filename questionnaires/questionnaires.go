// Package questionnaires owns the instruments as data: items, answer scales
// with their labels, scoring keys and reverse keys, and the loading of
// built-in and user-supplied instrument files.
//
// Item wording of the built-in instruments is the project's own, written to
// be faithful to the construct and key of each item, and is marked as adapted.
// Official item files can be loaded from a user file in the same format.
//
// It is a domain package: it must never import nats.go, go-openai,
// client_golang or an adapter package.
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
type Instrument struct {
	Name        string `toml:"name" json:"name"`
	Title       string `toml:"title" json:"title"`
	Citation    string `toml:"citation" json:"citation"`
	Adapted     bool   `toml:"adapted" json:"adapted"`
	Instruction string `toml:"instruction" json:"instruction"`
	Scale       Scale  `toml:"scale" json:"scale"`
	Items       []Item `toml:"items" json:"items"`

	keys     []string
	keyIndex []int
}
