package llm

import (
	"net/url"
	"strings"
	"time"
)

// Params are the settings a client resolved: its configuration with every
// default filled in, as a run records them. BaseURL has its credentials
// masked (see MaskURL); the API key is never part of it.
type Params struct {
	BaseURL           string
	Model             string
	Mode              string
	Endpoint          string
	Temperature       *float64 // nil: the server's default
	TopP              float64  // 0: the server's default
	Samples           int
	MaxTokens         int
	Seed              *uint64
	ReasoningEffort   string
	StructuredOutputs bool
	Concurrency       int
	Timeout           time.Duration // per attempt
	MaxRetries        int
}

// defaultBaseURL is go-openai's endpoint when a client sets none.
const defaultBaseURL = "https://api.openai.com/v1"

// Params returns the client's resolved settings.
func (c *Client) Params() Params {
	cfg := c.cfg
	base := cfg.BaseURL
	if base == "" {
		base = defaultBaseURL
	}
	return Params{
		BaseURL: MaskURL(base), Model: cfg.Model, Mode: cfg.Mode, Endpoint: cfg.Endpoint,
		Temperature: cfg.Temperature, TopP: cfg.TopP, Samples: cfg.Samples, MaxTokens: cfg.MaxTokens, Seed: cfg.Seed,
		ReasoningEffort: cfg.ReasoningEffort, StructuredOutputs: cfg.StructuredOutputs,
		Concurrency: cfg.Concurrency, Timeout: cfg.Timeout, MaxRetries: cfg.MaxRetries,
	}
}

// MaskURL returns u with its credentials masked, for results and logs:
// user information (https://user:token@host) and the values of query
// parameters that name a key, token, secret, signature or password become
// "xxxxx". A URL that does not parse is not repeated at all.
func MaskURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparseable URL)"
	}
	if p.User != nil {
		p.User = url.User("xxxxx")
	}
	if p.RawQuery != "" {
		q := p.Query()
		for k := range q {
			l := strings.ToLower(k)
			for _, s := range []string{"key", "token", "secret", "sig", "password", "auth"} {
				if strings.Contains(l, s) {
					q[k] = []string{"xxxxx"}
					break
				}
			}
		}
		p.RawQuery = q.Encode()
	}
	return p.String()
}
