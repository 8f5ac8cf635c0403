package llm

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
)

// adaptations are limits an endpoint stated in a 400 reply and that later
// requests respect: a server that takes only one choice per request gets
// n = 1 (the client asks again for the samples it lacks), one that caps
// the number of top log-probabilities gets the cap it names. Zero means no
// limit is known.
type adaptations struct {
	maxN           atomic.Int64
	maxTopLogprobs atomic.Int64
}

var (
	// nRefused matches a message that refuses more than one choice per
	// request: "Only one completion choice is allowed", "'n' : number
	// must be at most 1", "n must be 1 when using greedy sampling".
	nRefused = regexp.MustCompile(`(?i)(^|[^a-z0-9_])['"` + "`" + `]?n['"` + "`" + `]?\s*(must|should|can|cannot|can't|is|was|>|=|:|value|parameter|greater|larger|not|only)|one (completion )?choice|multiple choices|more than one choice`)
	// capStated finds the ceiling in a message about log-probabilities:
	// "Requested sample logprobs of 20, which is greater than max
	// allowed: 5", "Expected a value <= 20", "must be between 0 and 5".
	capStated = regexp.MustCompile(`(?i)logprob.*?(?:between\s+\d+\s+and|max(?:imum)?(?:\s+(?:allowed|value|is|of))?|at most|<=|≤|less than or equal to|up to|not exceed)\D{0,20}?(\d+)`)
)

// learn reads a refused request's 400 reply for a limit that the request
// exceeded and records it; it reports whether the request is worth sending
// again under the new limit.
func (a *adaptations) learn(e *RequestError, path string, body []byte) bool {
	if e.Status != http.StatusBadRequest && e.Status != http.StatusUnprocessableEntity {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	num := func(k string) int64 {
		n, _ := strconv.ParseInt(string(bytes.TrimSpace(m[k])), 10, 64)
		return n
	}
	low := strings.ToLower(e.Message)
	if strings.Contains(low, "logprob") {
		sm := capStated.FindStringSubmatch(e.Message)
		if sm == nil {
			return false
		}
		limit, err := strconv.ParseInt(sm[1], 10, 64)
		if err != nil || limit < 1 || limit >= num(logprobsField(path)) {
			return false
		}
		a.maxTopLogprobs.Store(limit)
		return true
	}
	if num("n") > 1 && nRefused.MatchString(e.Message) {
		a.maxN.Store(1)
		return true
	}
	return false
}

// logprobsField is the field holding the number of top log-probabilities:
// top_logprobs for chat, logprobs for completions.
func logprobsField(path string) string {
	if strings.HasSuffix(path, "/chat/completions") {
		return "top_logprobs"
	}
	return "logprobs"
}

// apply lowers the body's n and number of top log-probabilities to the
// known limits. Without a known limit the body is returned as it is.
func (a *adaptations) apply(path string, body []byte) []byte {
	maxN, maxTop := a.maxN.Load(), a.maxTopLogprobs.Load()
	if maxN == 0 && maxTop == 0 {
		return body
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	changed := false
	lower := func(k string, limit int64) {
		n, err := strconv.ParseInt(string(bytes.TrimSpace(m[k])), 10, 64)
		if err == nil && limit > 0 && n > limit {
			m[k] = json.RawMessage(strconv.FormatInt(limit, 10))
			changed = true
		}
	}
	lower("n", maxN)
	lower(logprobsField(path), maxTop)
	if !changed {
		return body
	}
	out, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return out
}
