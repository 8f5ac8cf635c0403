package main

import (
	"context"
	"os"
	"time"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/llm"
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

// runModel is a model's entry of the run block: its settings as its
// client resolved them and what its server said about itself. A model
// without a client (the synthetic backend, or one whose agents ran on
// other hosts) has its description only.
func runModel(ctx context.Context, info analysis.ModelInfo, c *llm.Client) analysis.RunModel {
	m := analysis.RunModel{Name: info.Name, Backend: info.Backend, Synthetic: info.Synthetic, Model: info.Model, Mode: info.Mode,
		ServedModel: info.ServedModel, SystemFingerprint: info.SystemFingerprint}
	if c == nil {
		return m
	}
	p, s := c.Params(), c.Served(ctx)
	m.BaseURL, m.Model, m.Mode, m.Endpoint = p.BaseURL, p.Model, p.Mode, p.Endpoint
	m.Temperature, m.TopP, m.Samples, m.MaxTokens, m.Seed = p.Temperature, p.TopP, p.Samples, p.MaxTokens, p.Seed
	m.ReasoningEffort, m.Concurrency, m.TimeoutSeconds, m.MaxRetries = p.ReasoningEffort, p.Concurrency, p.Timeout.Seconds(), p.MaxRetries
	m.Synthetic = m.Synthetic || s.Synthetic
	m.ServedModel, m.LastServedModel = s.Model, s.LastModel
	m.SystemFingerprint, m.LastSystemFingerprint, m.FingerprintChanged = s.Fingerprint, s.LastFingerprint, s.FingerprintChanged
	return m
}
