package llm

import (
	"net/http"
	"strings"
	"sync"
)

// BackendHeader is the response header in which Server names the backend
// that answered ("synthetic"): a client records it so that a run against
// `society model-server` is never mistaken for a run against a model.
const BackendHeader = "X-Society-Backend"

// Served is what an endpoint said about itself in its replies: the model id
// it served, its system_fingerprint, and whether it declared itself the
// synthetic respondents (Server's BackendHeader, or a fingerprint starting
// with "society-synthetic"). Fields are empty until a reply carried them.
type Served struct {
	Model       string
	Fingerprint string
	Synthetic   bool
}

// served keeps the first non-empty model id and fingerprint seen, and
// whether any reply declared the synthetic backend.
type served struct {
	mu sync.Mutex
	s  Served
}

func (v *served) note(model, fingerprint string, h http.Header) {
	synthetic := strings.HasPrefix(fingerprint, srvFingerprint) || h.Get(BackendHeader) == SyntheticName
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.s.Model == "" {
		v.s.Model = model
	}
	if v.s.Fingerprint == "" {
		v.s.Fingerprint = fingerprint
	}
	v.s.Synthetic = v.s.Synthetic || synthetic
}

func (v *served) get() Served {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.s
}

// Served reports what the endpoint said about itself in the replies so far.
func (c *Client) Served() Served { return c.served.get() }
