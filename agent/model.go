// Package agent owns the simulated people: personas, value prompts, the
// agents themselves (goroutines with their own seeded random source and
// memory) and the shards that hand events to them. It declares the Model port
// that every model backend implements.
//
// It is a domain package: it must never import nats.go, go-openai,
// client_golang or an adapter package.
package agent

import (
	"context"

	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// Style is how a persona's dominant value is put into the prompt.
type Style string

// Prompt styles of the study.
const (
	// StyleDescription names the value and its defining goal (the default).
	StyleDescription Style = "description"
	// StyleName names the value only.
	StyleName Style = "name"
	// StyleNone adds no prefix: the unprimed model.
	StyleNone Style = "none"
)

// Persona is who an agent is: its dominant value (values.None for an
// unprimed respondent) and how that value is put into its prompt.
type Persona struct {
	Value values.Value
	Style Style
}

// Question is one thing an agent asks its model.
type Question struct {
	Persona    Persona
	Instrument *questionnaires.Instrument
	Item       int // index into Instrument.Items
	// Sample is the agent's rank among the agents that share its persona.
	// Sample-mode backends key their cache on it so that the same sample
	// serves every population strategy; distribution backends ignore it.
	Sample int
	Round  int // game round; 0 for questionnaires
	// Context is extra text shown after the value prefix (memory of earlier
	// rounds, a filled-in test); empty for plain questionnaire items.
	Context string
	// Game is what the agent knows in a game round (Context is its
	// rendering); nil outside games. Backends that model behaviour rather
	// than read text (the synthetic respondents) use it.
	Game *Round
}

// Answer is a parsed answer. Value is on the instrument's scale; an invalid
// answer keeps the raw text and the reason it could not be used.
type Answer struct {
	Value  int
	Valid  bool
	Raw    string
	Reason string
}

// Reply is a model's response to a question: either a probability
// distribution over the scale's options (index 0 = Scale.Min), from which the
// agent draws its own answer with its own random source, or one answer.
type Reply struct {
	Dist   []float64
	Answer Answer
}

// Model answers questions. Backends (synthetic respondents, OpenAI-compatible
// servers, caches around them) implement it; agents depend on nothing else.
// Ask must be safe for concurrent use.
type Model interface {
	Ask(ctx context.Context, q *Question) (Reply, error)
}
