// Package analysis owns the measurements of how human-like a simulated
// population is: value scores from questionnaire answers, streaming
// correlation matrices, classical multidimensional scaling, Procrustes
// fitting, the Values Similarity score, bootstrap statistics and
// inference, the embedded human reference matrices with their
// provenance, and the run block that records the results' own (Run: the
// program's build as the binary records it, the host, the models).
// Writing and reading the results directory (files, tables,
// figures) is the results package's.
//
// It is a domain package: it must never import nats.go, go-openai,
// client_golang or an adapter package (bus, llm, metrics), nor results. It
// computes with gonum; everything it needs arrives as plain slices and
// matrices.
package analysis
