// Package analysis owns the measurements of how human-like a simulated
// population is: value scores from questionnaire answers, streaming
// correlation matrices, classical multidimensional scaling, Procrustes
// fitting, the Values Similarity score, bootstrap statistics, the embedded
// human reference matrices with their provenance, and the plots of value
// maps.
//
// It is a domain package: it must never import nats.go, go-openai,
// client_golang or an adapter package (bus, llm, metrics). It computes with
// gonum and draws with gonum/plot; everything it needs arrives as plain
// slices and matrices.
package analysis
