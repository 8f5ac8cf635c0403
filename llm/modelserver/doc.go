// Package modelserver is a fake OpenAI-compatible model server, as
// net/http/httptest is a fake web server: it serves answer distributions
// (the synthetic respondents of package llm) over the OpenAI HTTP API with
// injectable latency, slots, errors, garbage and hung requests, for tests,
// benchmarks and dry runs. `society model-server` serves it: its flags
// (Flags, with the loopback-only address check) and its graceful
// shutdown (Serve) are here too, so the command only wires them.
//
// It owns the server side of the API only: recognising the prompts that
// agent.Render writes, sampling and formatting replies, log-probabilities
// and structured outputs. It imports the domain (agent, questionnaires,
// values) and must never import llm, so that llm's own tests can run their
// client against it; it never imports nats.go, client_golang or the other
// adapters (bus, metrics).
package modelserver
