// Package sim owns one scenario's run: it prepares the scenario (the
// persona data, the Model-Specific calibration, test priming), builds the
// plan (instruments, population, models, phases), and runs the plan's
// phases and game rounds in one loop until every answer is in.
//
// The loop reaches the world through small ports that adapters implement:
// a Dispatcher hands a phase's tasks to agents and delivers their answer
// batches back (the NATS work queue in bus; Local, in this package, runs
// them in memory), Backends builds the scenario's models (llm/backend: the
// llm clients and the synthetic respondents), and an Observer follows the
// run (the Prometheus collectors in metrics, the terminal's progress bar
// and lines in progress).
//
// sim is a domain package: it must not import nats.go, go-openai,
// client_golang, nor the adapter packages bus, llm and metrics, which
// import it.
package sim
