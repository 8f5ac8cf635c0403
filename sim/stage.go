package sim

// Stager is an Observer that is also told of a run's steps after its
// answers are in, which take seconds on a large run: "analysing" and
// "writing results". Stage is called from the run's goroutine.
type Stager interface {
	Stage(name string)
}

// Stages a run goes through after its answers.
const (
	StageAnalysing = "analysing"
	StageWriting   = "writing results"
)

// Stage tells o, or each of its members that is a Stager, of a run's
// step: for a process that runs the steps after the answers itself (the
// orchestrator of a run over NATS).
func Stage(o Observer, name string) { stage(o, name) }

// stage tells o, or each of its members, of a run's step.
func stage(o Observer, name string) {
	switch o := o.(type) {
	case Observers:
		for _, m := range o {
			stage(m, name)
		}
	case Stager:
		o.Stage(name)
	}
}
