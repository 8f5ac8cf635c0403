package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrUnavailable is wrapped by the error of a request that could not be
// served after every retry, or while the endpoint's circuit breaker kept it
// out: the endpoint is down or overloaded, not the request wrong.
var ErrUnavailable = errors.New("model endpoint unavailable")

// maxResponseBytes bounds a response body read into memory. A completion
// with 20 top log-probabilities and n choices is a few hundred kilobytes
// at most.
const maxResponseBytes = 32 << 20

// retryPolicy is how failed attempts are retried.
type retryPolicy struct {
	maxRetries int           // attempts after the first; 0 means none
	base       time.Duration // backoff ceiling of the first retry
	max        time.Duration // backoff ceiling, and the cap on Retry-After
}

// backoff is the wait before retry number attempt (0-based): "full jitter",
// uniform in [0, min(max, base·2^attempt)], so that clients that failed
// together do not retry together. A server's Retry-After, when longer, is
// honoured up to max.
func (p retryPolicy) backoff(attempt int, retryAfter time.Duration) time.Duration {
	ceil := p.base
	for i := 0; i < attempt && ceil < p.max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, p.max)
	d := time.Duration(0)
	if ceil > 0 {
		d = rand.N(ceil + 1)
	}
	if retryAfter > d {
		d = min(retryAfter, p.max)
	}
	return d
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(min(s, 86400)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// breaker is a circuit breaker for one endpoint. After threshold
// consecutive failed attempts it opens: new attempts wait for the
// cool-down, then a single probe goes through (half-open) while the others
// keep waiting; the probe's success closes the breaker, its failure opens it
// for another cool-down. This keeps a failing server from being hammered
// by every waiting request at once.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu        sync.Mutex
	fails     int
	openUntil time.Time
	probing   bool
	change    chan struct{} // closed and replaced at every state change
}

func newBreaker(threshold int, cooldown time.Duration) *breaker {
	return &breaker{threshold: threshold, cooldown: cooldown, change: make(chan struct{})}
}

// acquire asks to send an attempt. When ok is false the caller waits for
// wait or for change, whichever comes first, and asks again.
func (b *breaker) acquire(now time.Time) (ok, probe bool, wait time.Duration, change <-chan struct{}) {
	if b.threshold <= 0 {
		return true, false, 0, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.fails < b.threshold:
		return true, false, 0, nil
	case now.Before(b.openUntil):
		return false, false, b.openUntil.Sub(now), b.change
	case !b.probing:
		b.probing = true
		return true, true, 0, nil
	default:
		return false, false, b.cooldown, b.change
	}
}

// done records the outcome of an attempt.
func (b *breaker) done(probe, ok bool, now time.Time) {
	if b.threshold <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	if ok {
		if b.fails >= b.threshold {
			b.notify()
		}
		b.fails = 0
		return
	}
	b.fails++
	if probe || b.fails == b.threshold {
		b.openUntil = now.Add(b.cooldown)
		b.notify()
	}
}

// abandon gives back a probe whose caller went away before an outcome, so
// that a waiting request can probe instead.
func (b *breaker) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	b.notify()
}

func (b *breaker) notify() {
	close(b.change)
	b.change = make(chan struct{})
}

// extraKey carries the body fields a request must gain on its way out.
type extraKey struct{}

// withExtra attaches JSON fields that the doer adds to the request body:
// the ones go-openai cannot send (an explicit zero temperature, vendor
// extensions such as vLLM's structured_outputs, a 64-bit seed).
func withExtra(ctx context.Context, fields map[string]any) context.Context {
	return context.WithValue(ctx, extraKey{}, fields)
}

// doer is the HTTP doer handed to go-openai. Every request passes through
// it: it rewrites the body, bounds concurrency, applies the per-attempt
// timeout, retries with backoff and keeps the circuit breaker. It buffers
// each response body before returning, so that the attempt's timeout and
// concurrency slot can be released on return.
type doer struct {
	hc      *http.Client
	sem     chan struct{} // one token per request in flight to the endpoint
	timeout time.Duration
	policy  retryPolicy
	breaker *breaker
	stats   *counters
	now     func() time.Time
	obs     Observer
	model   string // label for the observer
}

func (d *doer) Do(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	body, err := readBody(req)
	if err != nil {
		return nil, fmt.Errorf("request body: %w", err)
	}
	if extra, ok := ctx.Value(extraKey{}).(map[string]any); ok && len(extra) > 0 {
		if body, err = addFields(body, extra); err != nil {
			return nil, fmt.Errorf("request body: %w", err)
		}
	}
	d.stats.calls.Add(1)
	var last error
	// attempt counts the attempts that reached the endpoint: time spent
	// waiting for an open breaker is not an attempt, or a request could
	// use up its retries while other requests' failures kept the breaker
	// open, without ever being sent itself.
	for attempt, sent := 0, false; ; {
		if sent {
			attempt++
			d.stats.retries.Add(1)
		}
		resp, retryAfter, err := d.attempt(ctx, req, body, attempt >= d.policy.maxRetries)
		sent = !errors.Is(err, errOpen)
		switch {
		case err == nil:
			if resp.StatusCode >= 400 {
				// A client error such as 400 or 401: retrying cannot
				// fix it, and go-openai reports it to the caller.
				d.stats.failures.Add(1)
			}
			return resp, nil
		case ctx.Err() != nil:
			d.stats.failures.Add(1)
			return nil, ctx.Err()
		case !errors.Is(err, errRetryable):
			d.stats.failures.Add(1)
			return nil, err
		}
		last = err
		if attempt >= d.policy.maxRetries {
			// No attempt left: an open breaker fails the request at once.
			d.stats.failures.Add(1)
			return nil, fmt.Errorf("%w: %d attempts: %w", ErrUnavailable, attempt+1, last)
		}
		if errors.Is(err, errOpen) {
			continue
		}
		if err := sleep(ctx, d.policy.backoff(attempt, retryAfter), nil); err != nil {
			d.stats.failures.Add(1)
			return nil, err
		}
	}
}

// attemptOutcome names an attempt's outcome for the observer.
func attemptOutcome(ctx context.Context, resp *http.Response, err error) string {
	switch {
	case ctx.Err() != nil:
		return "canceled"
	case err == nil && resp != nil && resp.StatusCode < 400:
		return "ok"
	case err == nil && resp != nil:
		return "4xx"
	case strings.Contains(err.Error(), "status 429"):
		return "429"
	case strings.Contains(err.Error(), "status 5"):
		return "5xx"
	case strings.Contains(err.Error(), "timed out"):
		return "timeout"
	default:
		return "error"
	}
}

// errRetryable marks an attempt's failure as worth retrying.
var errRetryable = errors.New("retryable")

// errOpen is an attempt refused by the open circuit breaker; it has
// already waited, so no backoff follows it.
var errOpen = fmt.Errorf("%w: circuit open", errRetryable)

// attempt sends the request once. A nil error means a response to hand
// back (success or a client error such as 400, which retrying cannot fix).
//
// While the breaker is open an attempt is spent waiting for the cool-down
// (or the probe's outcome) instead of on the wire; the last attempt fails
// at once rather than wait for nothing.
func (d *doer) attempt(ctx context.Context, req *http.Request, body []byte, last bool) (*http.Response, time.Duration, error) {
	ok, probe, wait, change := d.breaker.acquire(d.now())
	if !ok {
		if last {
			return nil, 0, errOpen
		}
		if err := sleep(ctx, wait, change); err != nil {
			return nil, 0, err
		}
		return nil, 0, errOpen
	}
	queued := d.now()
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		if probe {
			d.breaker.abandon()
		}
		return nil, 0, ctx.Err()
	}
	sent := d.now()
	d.obs.ObserveQueueWait(d.model, sent.Sub(queued).Seconds())
	d.obs.InFlight(d.model, 1)
	resp, retryAfter, err := d.send(ctx, req, body)
	d.obs.InFlight(d.model, -1)
	d.obs.ObserveRequest(d.model, attemptOutcome(ctx, resp, err), d.now().Sub(sent).Seconds())
	<-d.sem
	if ctx.Err() != nil {
		// Our caller gave up: that says nothing about the endpoint.
		if probe {
			d.breaker.abandon()
		}
		if err == nil {
			return resp, 0, nil
		}
		return nil, 0, ctx.Err()
	}
	d.breaker.done(probe, err == nil || !errors.Is(err, errRetryable), d.now())
	return resp, retryAfter, err
}

func (d *doer) send(ctx context.Context, req *http.Request, body []byte) (*http.Response, time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	r := req.Clone(actx)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	resp, err := d.hc.Do(r)
	if err != nil {
		return nil, 0, transportErr(ctx, err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	resp.Body.Close()
	if err != nil {
		return nil, 0, transportErr(ctx, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode == http.StatusRequestTimeout,
		resp.StatusCode >= 500:
		return nil, parseRetryAfter(resp.Header.Get("Retry-After"), d.now()),
			fmt.Errorf("%w: status %d", errRetryable, resp.StatusCode)
	}
	if resp.StatusCode < 300 {
		// An error object sent with 200, and log-probabilities that
		// encoding/json rejects (reply.go).
		if data, err = checkReply(data); err != nil {
			return nil, 0, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(data))
		resp.ContentLength = int64(len(data))
	}
	return resp, 0, nil
}

// transportErr classifies an error of the exchange: the caller's
// cancellation is final; timeouts of the attempt, refused or reset
// connections and truncated responses are worth another attempt.
func transportErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: attempt timed out", errRetryable)
	}
	return fmt.Errorf("%w: %w", errRetryable, err)
}

// sleep waits for d, for change to be closed, or for ctx to end.
func sleep(ctx context.Context, d time.Duration, change <-chan struct{}) error {
	if d <= 0 && change == nil {
		return ctx.Err()
	}
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-change:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil {
		return nil, nil
	}
	defer req.Body.Close()
	return io.ReadAll(req.Body)
}

// addFields sets top-level fields of a JSON object body. The fields are
// ones the request struct never sets, so they are appended before the
// closing brace, sorted; only when the body already has such a key is it
// decoded and re-encoded, which costs a fifth of the client's CPU per call.
func addFields(body []byte, fields map[string]any) ([]byte, error) {
	b := bytes.TrimRight(body, " \t\r\n")
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, errors.New("not a JSON object")
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if bytes.Contains(b, []byte(strconv.Quote(k)+":")) {
			return replaceFields(b, fields)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]byte, 0, len(b)+64*len(keys))
	out = append(out, b[:len(b)-1]...)
	empty := len(bytes.TrimSpace(b[1:len(b)-1])) == 0
	for _, k := range keys {
		v, err := json.Marshal(fields[k])
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", k, err)
		}
		if !empty {
			out = append(out, ',')
		}
		empty = false
		out = strconv.AppendQuote(out, k)
		out = append(out, ':')
		out = append(out, v...)
	}
	return append(out, '}'), nil
}

func replaceFields(body []byte, fields map[string]any) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	for k, v := range fields {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", k, err)
		}
		m[k] = raw
	}
	return json.Marshal(m)
}
