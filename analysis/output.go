package analysis

// Output is what a results directory is made from: results.Write writes
// it, and "society report" reads it back from the directory.
type Output struct {
	Outcome   *Outcome
	Collector *Collector
	Study     *Study
	// Scenario is the exact scenario used, defaults filled in, as TOML.
	Scenario []byte
}
