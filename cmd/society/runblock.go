package main

import (
	"os"
	"time"

	"github.com/society-sim/society/analysis"
)

// runBlock starts a run's provenance block: the program's build, the host
// and the start time. Its models and end are filled as the run ends
// (analysis.Results.Finish).
func runBlock(id string, start time.Time) *analysis.Run {
	v := programVersion()
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return &analysis.Run{ID: id, Version: v.Version, Revision: v.Revision, Modified: v.Modified, BuildTime: v.Time,
		GoVersion: v.GoVersion, Host: host, Start: analysis.RunTime(start)}
}

// distributedRun starts the run block of a run over NATS, written by the
// process that computes its results: the run started at start (its
// record's), or, for a record without one, now. Its models are described
// from the study, their traffic from the hosts' reports; their resolved
// settings stay with the agent hosts.
func distributedRun(id, start string) *analysis.Run {
	r := runBlock(id, time.Now())
	if start != "" {
		r.Start = start
	}
	return r
}
