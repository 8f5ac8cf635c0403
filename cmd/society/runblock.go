package main

import (
	"time"

	"github.com/society-sim/society/analysis"
)

// runBlock starts the provenance block of a run in this process.
func runBlock(id string, start time.Time) *analysis.Run {
	return analysis.StartRun(id, start, programVersion())
}

// distributedRun starts the run block of a run over NATS that started at
// start (its record's; "" for now).
func distributedRun(id, start string) *analysis.Run {
	return analysis.StartRecordedRun(id, start, programVersion())
}
