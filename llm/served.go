package llm

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
)

// BackendHeader is the response header in which the model server
// (llm/modelserver) names the backend that answered ("synthetic"): a client
// records it so that a run against `society model-server` is never
// mistaken for a run against a model.
const BackendHeader = "X-Society-Backend"

// SyntheticFingerprint starts the system_fingerprint of the model server's
// replies.
const SyntheticFingerprint = "society-" + SyntheticName

// Served is what an endpoint said about itself in its replies: the model id
// it served and its system_fingerprint, first and last seen, whether the
// fingerprint changed between replies (a server updated or a load
// balancer over different builds: answers of one run from different
// model builds; the model id alone varies harmlessly, an alias answered
// with the served name), and
// whether it declared itself the synthetic respondents (BackendHeader, or
// a fingerprint starting with SyntheticFingerprint). Fields are empty
// until a reply carried them.
type Served struct {
	Model           string `json:"model,omitempty"`
	Fingerprint     string `json:"fingerprint,omitempty"`
	LastModel       string `json:"last_model,omitempty"`
	LastFingerprint string `json:"last_fingerprint,omitempty"`
	// FingerprintChanged marks replies with more than one fingerprint.
	FingerprintChanged bool `json:"fingerprint_changed,omitempty"`
	Synthetic          bool `json:"synthetic,omitempty"`
}

// served keeps the first and last non-empty model id and fingerprint seen,
// and whether any reply declared the synthetic backend.
type served struct {
	mu     sync.Mutex
	s      Served
	stored Served // what the cache holds, to write only news
}

// news reports whether s says more than stored, the last values aside:
// replies alternating between two fingerprints must not write the cache
// at every reply.
func news(s, stored Served) bool {
	s.LastModel, s.LastFingerprint = stored.LastModel, stored.LastFingerprint
	return s != stored
}

// noteServed records what a reply said about its server, and keeps it in
// the cache beside the answers: a rerun served from the cache makes no
// call, yet its answers came from the same server and must be labelled
// as such.
func (c *Client) noteServed(ctx context.Context, model, fingerprint string, h http.Header) {
	synthetic := strings.HasPrefix(fingerprint, SyntheticFingerprint) || h.Get(BackendHeader) == SyntheticName
	v := &c.served
	v.mu.Lock()
	if v.s.Model == "" {
		v.s.Model = model
	}
	if v.s.Fingerprint == "" {
		v.s.Fingerprint = fingerprint
	}
	changed := fingerprint != "" && v.s.LastFingerprint != "" && fingerprint != v.s.LastFingerprint
	v.s.LastModel = cmp.Or(model, v.s.LastModel)
	v.s.LastFingerprint = cmp.Or(fingerprint, v.s.LastFingerprint)
	first := changed && !v.s.FingerprintChanged
	v.s.FingerprintChanged = v.s.FingerprintChanged || changed
	v.s.Synthetic = v.s.Synthetic || synthetic
	now, write := v.s, news(v.s, v.stored)
	if write {
		v.stored = v.s
	}
	v.mu.Unlock()
	if first {
		c.warnOnce("fingerprint-changed", "the server's system_fingerprint changed during the run: "+
			"its answers may come from different model builds",
			"first_model", now.Model, "first_fingerprint", now.Fingerprint, "model", now.LastModel, "fingerprint", now.LastFingerprint)
	}
	// A probe's headers name no model: writing what they say would
	// replace the record of an earlier run's replies with less.
	if write && c.cfg.Cache != nil && (now.Model != "" || now.Fingerprint != "") {
		if raw, err := json.Marshal(now); err == nil {
			// Losing this record loses a label, never an answer: a failed
			// write must not fail the request.
			_ = c.cfg.Cache.Put(ctx, c.servedKey(), raw)
		}
	}
}

func (c *Client) servedKey() string { return keyHash(c.params, "served") }

// Served reports what the endpoint said about itself in the replies of
// this client, or, when it has made no call (a rerun from the cache), in
// the replies whose answers the cache holds.
func (c *Client) Served(ctx context.Context) Served {
	c.served.mu.Lock()
	s := c.served.s
	c.served.mu.Unlock()
	// A probe of the endpoint (headers only) may have said it is
	// synthetic without naming a model: the cache still knows the rest.
	if s.Model != "" || s.Fingerprint != "" || c.cfg.Cache == nil {
		return s
	}
	raw, ok, err := c.cfg.Cache.store.Get(ctx, c.servedKey()) // not a lookup of answers: uncounted
	if err != nil || !ok {
		return s
	}
	var stored Served
	if json.Unmarshal(raw, &stored) != nil {
		return s
	}
	stored.Synthetic = stored.Synthetic || s.Synthetic
	return stored
}
