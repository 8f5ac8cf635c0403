package analysis

// Output is what a results directory is made from: results.Write writes
// it, and "society report" reads it back from the directory.
type Output struct {
	Outcome   *Outcome
	Collector *Collector
	Study     *Study
	// Scenario is the exact scenario used, defaults filled in, as TOML.
	Scenario []byte
	// Prompts are the distinct prompts the run's agents asked their
	// models (prompts.csv), in file order; nil when not recorded.
	Prompts []PromptRow
}

// PromptRow is one distinct prompt a run sent, or would have sent, to a
// model: a row of prompts.csv. System and User are the texts as sent: the
// system message (empty when the persona has no value prefix) and the
// user message of a chat request, or, for Endpoint "completions", an
// empty System and the whole completions prompt in User.
type PromptRow struct {
	Model, Backend, Mode, Endpoint string
	// Persona is the dominant value's code, or "none"; Style how it is
	// put into the prompt.
	Persona, Style string
	Instrument     string
	Item           int // the item's id
	Round          int // the game round; 0 for questionnaires
	System, User   string
	// Agents is how many agents' answers the prompt served; Samples, in
	// sample mode, the completions drawn for it (its agents' highest
	// rank plus one), 0 in distribution mode.
	Agents, Samples int
}
