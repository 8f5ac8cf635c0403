// Package results owns the results directory of a run: writing it
// (results.json, report.md, answers.csv or answers.csv.gz and
// answers.parquet, population.csv, invalid.jsonl, the CSV tables — among
// them the analyst's scores.csv, items.csv, prompts.csv and games.csv —, the Markdown
// tables and the PNG and SVG figures, the stored instruments and
// references) and reading it back, so that "society report" rebuilds the
// report from the stored answers without calling any model (prompts.csv,
// recorded as the agents asked, is read back as it is). The
// measurements themselves (scores, correlations, MDS, Procrustes,
// bootstrap, inference) are analysis's; results lays them out, and
// writes the summary a terminal shows at the end of a run (Summary).
//
// It is a domain package: it must never import nats.go, go-openai,
// client_golang or an adapter package (bus, llm, metrics). It draws with
// gonum/plot and writes Parquet with parquet-go.
package results
