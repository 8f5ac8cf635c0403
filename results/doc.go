// Package results owns the results directory of a run: writing it
// (results.json, report.md, answers.csv or answers.csv.gz, population.csv,
// invalid.jsonl, the CSV tables, the Markdown tables and the PNG and SVG
// figures, the stored instruments and references) and reading it back, so
// that "society report" rebuilds the report from the stored answers without
// calling any model. The measurements themselves (scores, correlations,
// MDS, Procrustes, bootstrap, inference) are analysis's; results lays them
// out.
//
// It is a domain package: it must never import nats.go, go-openai,
// client_golang or an adapter package (bus, llm, metrics). It draws with
// gonum/plot.
package results
