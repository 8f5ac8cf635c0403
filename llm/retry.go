package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// extraFields are body fields with their values encoded as JSON, sorted
// by key. Encoding them once per client rather than once per request
// saves a map and a reflective encoding per field on every call.
type extraFields struct {
	keys []string
	vals [][]byte
}

// encodeFields encodes the values of m.
func encodeFields(m map[string]any) (*extraFields, error) {
	f := &extraFields{keys: make([]string, 0, len(m)), vals: make([][]byte, 0, len(m))}
	for k := range m {
		f.keys = append(f.keys, k)
	}
	slices.Sort(f.keys)
	for _, k := range f.keys {
		v, err := json.Marshal(m[k])
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", k, err)
		}
		f.vals = append(f.vals, v)
	}
	return f, nil
}

// doer sends the client's requests (post) and the probe's (Do). Every
// request passes through it: it rewrites the body, bounds and adapts concurrency, applies the
// per-attempt timeout, retries with backoff and keeps the circuit breaker.
// It buffers each response body before returning, so that the attempt's
// timeout and concurrency slot can be released on return.
//
// A failure reply never reaches go-openai: the doer turns it into a
// *RequestError carrying the server's own message, and stops at once on
// a failure no retry can mend. A failure that concerns the whole endpoint
// (a rejected key, a missing model, an exhausted quota, nothing listening
// at the address) is kept, and every later request fails with it at once.
type doer struct {
	hc      *http.Client
	limit   *limiter
	timeout time.Duration
	policy  retryPolicy
	breaker *breaker
	stats   *counters
	now     func() time.Time
	obs     Observer
	model   string // label for the observer and the log
	log     *slog.Logger

	adapt     adaptations
	answered  atomic.Bool                  // the endpoint has sent a reply once
	redirects atomic.Bool                  // the endpoint redirected a request (roundTrip)
	fatal     atomic.Pointer[RequestError] // the endpoint's permanent failure
	lastErr   atomic.Pointer[RequestError] // the latest retryable failure

	logMu      sync.Mutex
	loggedAt   time.Time
	suppressed int

	deadlines deadlines // of the attempts (send)

	outage   outage
	down     atomic.Pointer[error] // the endpoint was declared unavailable
	downOnce sync.Once
	downC    chan struct{} // closed when down is set: waiting requests give up
}

// downChan is closed once the endpoint is declared unavailable.
func (d *doer) downChan() chan struct{} {
	d.downOnce.Do(func() { d.downC = make(chan struct{}) })
	return d.downC
}

// minOutage is the least time an endpoint must keep failing, every attempt
// in a row, before every request to it fails at once: a server that
// restarts within it is waited for; one that answers nothing for longer
// (hung, or slower than the timeout) ends the run with the cause instead
// of keeping it waiting for hours. With a long timeout it is two timeouts.
const minOutage = 30 * time.Second

// minShedding replaces minOutage when the endpoint sheds load (429, 503):
// it is alive and says so, and a hosted API's rate-limit window lasts a
// minute or more, so only a much longer run of refusals ends the run.
const minShedding = 5 * time.Minute

// outage follows an endpoint's run of failed attempts. A failure counts
// when its attempt was sent after the previous failure came back: attempts
// sent together and failing together are one piece of evidence, as a
// single request's retries are.
type outage struct {
	mu       sync.Mutex
	fails    int
	start    time.Time // when the run of failures began
	lastFail time.Time
}

// outageEvidence is how many failures in a row, each sent after the one
// before came back, an outage needs besides its duration: one burst of
// requests that failed together is not enough.
const outageEvidence = 3

// fail records a retryable failure of an attempt sent at sent, and reports
// whether the endpoint is to be declared unavailable: outageEvidence
// failures in a row over at least limit; lasted is how long the failures
// have lasted.
func (o *outage) fail(sent, now time.Time, limit time.Duration) (down bool, lasted time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fails == 0 {
		o.start = sent
	}
	if o.fails == 0 || !sent.Before(o.lastFail) {
		o.fails++
	}
	o.lastFail = now
	lasted = now.Sub(o.start)
	return o.fails >= outageEvidence && lasted >= limit, lasted
}

func (o *outage) ok() {
	o.mu.Lock()
	o.fails = 0
	o.mu.Unlock()
}

// failureLogEvery is the least time between two log lines about failed
// attempts of one endpoint: each failure kind shows up while it happens,
// without a line per request when hundreds fail together.
const failureLogEvery = 10 * time.Second

// begin counts a call about to be made under ctx, or says why none is:
// ctx has ended (given up before it was made: no call), or the endpoint
// refused the run for good (a call that failed).
func (d *doer) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.stats.calls.Add(1)
	if f := d.fatal.Load(); f != nil {
		d.stats.failures.Add(1)
		return f
	}
	return nil
}

func (d *doer) Do(req *http.Request) (*http.Response, error) {
	if err := d.begin(req.Context()); err != nil {
		return nil, err
	}
	body, err := readBody(req)
	if err != nil {
		d.stats.failures.Add(1)
		return nil, fmt.Errorf("request body: %w", err)
	}
	resp, data, err := d.do(req.Context(), req, body, nil)
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	return resp, nil
}

// post sends body with the method, URL and headers of tmpl (a request
// without a body, shared by every call) under ctx, as Do does, and returns
// the reply's body and headers. The body is read into *buf (from
// getReplyBuf), which the caller gives back with putReplyBuf once it has
// decoded the body; nothing else keeps it.
func (d *doer) post(ctx context.Context, tmpl *http.Request, body []byte, buf *[]byte) ([]byte, http.Header, error) {
	if err := d.begin(ctx); err != nil {
		return nil, nil, err
	}
	resp, data, err := d.do(ctx, tmpl, body, buf)
	if err != nil {
		return nil, nil, err
	}
	return data, resp.Header, nil
}

// do sends body to req's URL under ctx until a reply succeeds or no retry
// is left, and returns the reply with its body read (into *buf when buf is
// not nil). req's own context is not used: each attempt sends a copy of
// req with the attempt's (send), so the template needs no copy of its own.
func (d *doer) do(ctx context.Context, req *http.Request, body []byte, buf *[]byte) (*http.Response, []byte, error) {
	body = d.adapt.apply(req.URL.Path, body)
	var last error
	// attempt counts the attempts that reached the endpoint: time spent
	// waiting for an open breaker is not an attempt, or a request could
	// use up its retries while other requests' failures kept the breaker
	// open, without ever being sent itself. Nor is an attempt that the
	// endpoint refused for a limit it stated, sent again within it.
	attempt := 0
	for {
		if down := d.down.Load(); down != nil {
			d.stats.failures.Add(1)
			return nil, nil, *down
		}
		resp, data, retryAfter, err := d.attempt(ctx, req, body, buf, attempt >= d.policy.maxRetries)
		if err == nil {
			return resp, data, nil
		}
		if ctx.Err() != nil {
			d.stats.failures.Add(1)
			return nil, nil, ctx.Err()
		}
		var re *RequestError
		switch {
		case errors.As(err, &re) && d.adapt.learn(re, req.URL.Path, body):
			d.log.Warn("model endpoint states a limit; later requests keep to it",
				"model", d.model, "url", re.URL, "message", re.Message)
			body = d.adapt.apply(req.URL.Path, body)
			continue
		case re != nil && re.Permanent:
			d.stats.failures.Add(1)
			if endpointWide(re) && d.fatal.CompareAndSwap(nil, re) {
				d.log.Error("model endpoint cannot serve this run", "model", d.model, "err", re.Error())
			}
			return nil, nil, re
		case re != nil:
			last = re
			d.lastErr.Store(re)
			d.logFailure(re, attempt)
		case !errors.Is(err, errOpen):
			d.stats.failures.Add(1)
			return nil, nil, err
		}
		if attempt >= d.policy.maxRetries {
			// No attempt left: an open breaker fails the request at once.
			d.stats.failures.Add(1)
			if last == nil {
				// Other requests' failures opened the breaker: theirs
				// is the cause to name.
				if le := d.lastErr.Load(); le != nil {
					last = le
				} else {
					last = errOpen
				}
			}
			return nil, nil, fmt.Errorf("%w after %d attempts, the last: %w", ErrUnavailable, attempt+1, last)
		}
		if errors.Is(err, errOpen) {
			continue
		}
		attempt++
		d.stats.retries.Add(1)
		if err := sleep(ctx, d.policy.backoff(attempt-1, retryAfter), d.downChan()); err != nil {
			d.stats.failures.Add(1)
			return nil, nil, err
		}
	}
}

// endpointWide reports whether a permanent failure concerns every request
// to the endpoint, not only this one: a 400 about one prompt (too long for
// the context) says nothing about the next.
func endpointWide(e *RequestError) bool {
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return false
	}
	return true
}

// logFailure logs a retryable failure as it happens, at most once per
// failureLogEvery, with how many were left out since the last line.
func (d *doer) logFailure(e *RequestError, attempt int) {
	now := d.now()
	d.logMu.Lock()
	if !d.loggedAt.IsZero() && now.Sub(d.loggedAt) < failureLogEvery {
		d.suppressed++
		d.logMu.Unlock()
		return
	}
	n := d.suppressed
	d.loggedAt, d.suppressed = now, 0
	d.logMu.Unlock()
	d.log.Warn("model request failed; retrying", "model", d.model, "err", e.Error(),
		"attempt", attempt+1, "more_failures", n, "concurrency", d.limit.current())
}

// asRequestError is errors.As for *RequestError.
func asRequestError(err error) (*RequestError, bool) {
	var re *RequestError
	ok := errors.As(err, &re)
	return re, ok
}

// attemptOutcome names an attempt's outcome for the observer.
func attemptOutcome(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "canceled"
	}
	if err == nil {
		return "ok"
	}
	re, ok := asRequestError(err)
	switch {
	case !ok:
		return "error"
	case re.Status == http.StatusTooManyRequests:
		return "429"
	case re.Status >= 500:
		return "5xx"
	case re.Status >= 400:
		return "4xx"
	case re.Overload:
		return "timeout"
	default:
		return "error"
	}
}

// errOpen is an attempt refused by the open circuit breaker; it has
// already waited, so no backoff follows it.
var errOpen = errors.New("circuit open")

// attempt sends the request once. A nil error means a successful reply;
// a failed one comes back as a *RequestError.
//
// While the breaker is open an attempt is spent waiting for the cool-down
// (or the probe's outcome) instead of on the wire; the last attempt fails
// at once rather than wait for nothing.
func (d *doer) attempt(ctx context.Context, req *http.Request, body []byte, buf *[]byte, last bool) (*http.Response, []byte, time.Duration, error) {
	ok, probe, wait, change := d.breaker.acquire(d.now())
	if !ok {
		if last {
			return nil, nil, 0, errOpen
		}
		if err := sleepOr(ctx, wait, change, d.downChan()); err != nil {
			return nil, nil, 0, err
		}
		return nil, nil, 0, errOpen
	}
	queued := d.now()
	epoch, err := d.limit.acquire(ctx)
	if err == nil && d.down.Load() != nil {
		// Declared unavailable while this request waited for a slot.
		d.limit.release(epoch, outcomeNeutral)
		err = *d.down.Load()
	}
	if f := d.fatal.Load(); err == nil && f != nil {
		// Refused for good while this request waited for a slot.
		d.limit.release(epoch, outcomeNeutral)
		err = f
	}
	if err != nil {
		if probe {
			d.breaker.abandon()
		}
		return nil, nil, 0, err
	}
	sent := d.now()
	d.obs.ObserveQueueWait(d.model, sent.Sub(queued).Seconds())
	d.obs.InFlight(d.model, 1)
	// Limits the endpoint stated while this request waited for its slot.
	body = d.adapt.apply(req.URL.Path, body)
	resp, data, retryAfter, err := d.send(ctx, req, body, buf)
	d.obs.InFlight(d.model, -1)
	d.obs.ObserveRequest(d.model, attemptOutcome(ctx, err), d.now().Sub(sent).Seconds())
	// Only a failure is examined: the target of errors.As escapes to
	// the heap, one allocation on every successful attempt otherwise.
	var (
		re   *RequestError
		isRE bool
	)
	if err != nil {
		re, isRE = asRequestError(err)
	}
	if isRE && re.Permanent && endpointWide(re) && d.fatal.CompareAndSwap(nil, re) {
		// Kept before the slot is released, so that no request waiting
		// for it is sent.
		d.log.Error("model endpoint cannot serve this run", "model", d.model, "err", re.Error())
	}
	switch {
	case ctx.Err() != nil:
		// Our caller gave up: that says nothing about the endpoint.
		d.limit.release(epoch, outcomeNeutral)
		if probe {
			d.breaker.abandon()
		}
		if err == nil {
			return resp, data, 0, nil
		}
		return nil, nil, 0, ctx.Err()
	case err == nil:
		d.answered.Store(true)
		d.outage.ok()
		if d.now().Sub(sent) > d.timeout/2 {
			d.limit.release(epoch, outcomeSlow)
		} else {
			d.limit.release(epoch, outcomeSuccess)
		}
	case isRE && re.Overload:
		d.limit.release(epoch, outcomeOverload)
	default:
		d.limit.release(epoch, outcomeNeutral)
	}
	if isRE && !re.Permanent {
		now := d.now()
		limit := max(minOutage, 2*d.timeout)
		if re.Status == http.StatusTooManyRequests || re.Status == http.StatusServiceUnavailable {
			limit = max(minShedding, limit)
		}
		if isDown, lasted := d.outage.fail(sent, now, limit); isDown {
			down := fmt.Errorf("%w: every attempt failed for %v, the last: %w", ErrUnavailable, lasted.Round(time.Second), re)
			if d.down.CompareAndSwap(nil, &down) {
				close(d.downChan())
				d.log.Error("model endpoint unavailable", "model", d.model, "err", down.Error())
			}
		}
	}
	d.breaker.done(probe, err == nil || (isRE && re.Permanent), d.now())
	return resp, data, retryAfter, err
}

func (d *doer) send(ctx context.Context, req *http.Request, body []byte, buf *[]byte) (*http.Response, []byte, time.Duration, error) {
	// Bounded by the timeout (at most a grain later, see deadlines),
	// reading the body included.
	sd := d.deadlines.acquire(ctx, d.timeout)
	defer d.deadlines.release(sd)
	// A shallow copy: the headers and URL are the caller's, which
	// net/http reads and never changes.
	r := req.WithContext(sd.ctx)
	// io.NopCloser of a bytes.Reader: net/http knows it is in memory and
	// writes the headers and the body in one write; a body type of its
	// own costs a write system call more.
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	resp, err := d.roundTrip(r)
	if err != nil {
		return nil, nil, 0, transportError(ctx, req, err, d.answered.Load(), d.timeout.String())
	}
	var data []byte
	if buf != nil {
		data, err = readSizedInto((*buf)[:0], resp.Body, resp.ContentLength, maxResponseBytes)
		*buf = data
	} else {
		data, err = readSized(resp.Body, resp.ContentLength, maxResponseBytes)
	}
	resp.Body.Close()
	if err != nil {
		return nil, nil, 0, transportError(ctx, req, err, d.answered.Load(), d.timeout.String())
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Any reply is a sign of life, even a refusal.
		d.answered.Store(true)
		return nil, nil, parseRetryAfter(resp.Header.Get("Retry-After"), d.now()),
			statusError(req, resp.StatusCode, resp.Header, data)
	}
	// Log-probabilities some servers write as NaN or -Infinity, which
	// encoding/json rejects (reply.go).
	data = sanitiseNumbers(data)
	if e, ok := errorInBody(req, resp.Header, data); ok {
		d.answered.Store(true)
		return nil, nil, 0, e
	}
	return resp, data, 0, nil
}

// roundTrip sends r through the client's transport. http.Client.Do adds
// to the transport's round trip what only a redirect needs (a copy of the
// request's headers and URL at every call, 3 µs and five allocations of a
// sample call's client CPU); a reply that redirects is not taken, and the
// request goes again through http.Client.Do, which follows the redirect
// as before, as every later request of the client does (an endpoint that
// redirects once gets one request more, answered by its redirect only).
// Errors are wrapped as http.Client.Do wraps them.
func (d *doer) roundTrip(r *http.Request) (*http.Response, error) {
	rt := d.hc.Transport
	if rt == nil || d.hc.Jar != nil || d.hc.Timeout != 0 || d.redirects.Load() {
		return d.hc.Do(r)
	}
	resp, err := rt.RoundTrip(r)
	if err != nil {
		return nil, &url.Error{Op: urlErrorOp(r.Method), URL: r.URL.String(), Err: err}
	}
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return resp, nil
	}
	if resp.Header.Get("Location") == "" {
		return resp, nil // http.Client.Do returns it as it is
	}
	d.redirects.Store(true)
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	again := r.WithContext(r.Context())
	if r.GetBody != nil {
		body, err := r.GetBody()
		if err != nil {
			return nil, err
		}
		again.Body = body
	}
	return d.hc.Do(again)
}

// urlErrorOp is the Op of the *url.Error http.Client.Do returns for a
// request with method m ("Post" for POST).
func urlErrorOp(m string) string {
	if m == "" {
		return "Get"
	}
	return m[:1] + strings.ToLower(m[1:])
}

// sleepOr waits for d, for either channel to be closed, or for ctx to end.
func sleepOr(ctx context.Context, d time.Duration, a, b <-chan struct{}) error {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-a:
		return nil
	case <-b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
	return readSized(req.Body, req.ContentLength, math.MaxInt64)
}

// readSized reads r up to limit bytes into one buffer of the announced
// size n (when known and within the limit) instead of growing one from
// 512 bytes: a request body or reply of a few KiB costs one allocation,
// not four or five.
func readSized(r io.Reader, n, limit int64) ([]byte, error) {
	return readSizedInto(nil, r, n, limit)
}

// readSizedInto is readSized reading into dst's storage when it is large
// enough (dst is empty).
func readSizedInto(dst []byte, r io.Reader, n, limit int64) ([]byte, error) {
	if n <= 0 || n > limit {
		if dst == nil {
			return io.ReadAll(io.LimitReader(r, limit))
		}
		return readAllInto(dst, io.LimitReader(r, limit))
	}
	// One byte of room past n for the read that checks for more: a
	// separate one-byte array would escape to the heap at every call.
	var buf []byte
	if int64(cap(dst)) > n {
		buf = dst[:n]
	} else {
		buf = make([]byte, n, n+1)
	}
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	// A body longer than announced is read whole, as ReadAll would.
	for range 100 {
		k, err := r.Read(buf[n : n+1])
		switch {
		case k > 0:
			rest, err := io.ReadAll(io.LimitReader(r, limit-n-1))
			if err != nil {
				return nil, err
			}
			return append(buf[:n+1], rest...), nil
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return nil, err
		}
	}
	return nil, io.ErrNoProgress
}

// readAllInto is io.ReadAll appending to dst.
func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		k, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+k]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// replyBufs are the buffers replies are read into on the model path (post):
// a reply is decoded into fresh values and its buffer used again, not
// left to the collector at every call.
var replyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxReplyBuf bounds the buffers kept: one grown by a large reply (many
// choices with their log-probabilities) is left to the collector.
const maxReplyBuf = 256 << 10

func getReplyBuf() *[]byte { return replyBufs.Get().(*[]byte) }

func putReplyBuf(b *[]byte) {
	if cap(*b) <= maxReplyBuf {
		*b = (*b)[:0]
		replyBufs.Put(b)
	}
}
