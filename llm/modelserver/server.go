package modelserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
)

// Respondents answer the questions the server recognises: the probability
// of each option of in's scale, from Scale.Min up, for persona p's answer
// to item (llm.Synthetic is the one the command serves).
type Respondents interface {
	Distribution(in *questionnaires.Instrument, item int, p agent.Persona) []float64
}

// The server declares itself as the synthetic respondents in the header
// and under the name that llm's client recognises (llm.BackendHeader,
// llm.SyntheticName; a test holds them equal).
const (
	backendHeader = "X-Society-Backend"
	syntheticName = "synthetic"
)

// Options configure a Server: its randomness and the faults it injects
// so that clients meet, on loopback, what a loaded GPU server does to them.
type Options struct {
	// Seed drives every random choice the server makes (answers when the
	// request carries no seed, formats, garbage, injected faults).
	Seed uint64
	// Latency is how long each answered request holds its slot, standing in
	// for generation time.
	Latency time.Duration
	// Slots is how many requests are served at once; the rest queue until a
	// slot frees or their client gives up. Zero or less means no limit.
	Slots int
	// ErrorRate is the fraction of requests answered with an error instead
	// of completions: half 429 (with Retry-After: 0), half 500.
	ErrorRate float64
	// GarbageRate is the fraction of completions whose text cannot be read
	// as an answer (refusals, empty text, ranges).
	GarbageRate float64
	// TimeoutRate is the fraction of requests that never answer: they hang
	// until the client gives up (the request's context is done). Hung
	// requests hold no slot.
	TimeoutRate float64
	// Models lists the model names accepted; empty accepts any name.
	Models []string
}

// Stats count what a Server did. Requests counts requests to the two
// completion endpoints; a request that is neither served, failed on purpose
// nor hung was malformed or abandoned by its client while queued.
type Stats struct {
	Requests int64 // completion requests received
	Served   int64 // answered with completions (status 200)
	Errors   int64 // injected 429 and 500 responses
	Garbage  int64 // completions whose text was made unreadable on purpose
	Timeouts int64 // requests left hanging until the client gave up
	// NotFound counts 404s: unknown paths and model names the server does
	// not serve (--models), completion requests or not.
	NotFound int64
	// BadRequests counts requests refused as malformed: unreadable or
	// invalid bodies (400) and wrong methods (405), on any path.
	BadRequests int64
	MaxInFlight int64 // most requests in service at once (bounded by Slots)
	// MaxOpen is the most completion requests open at once: received and
	// not yet answered, whether queued for a slot or in service. It is
	// the concurrency the clients reached, which MaxInFlight cannot show
	// above Slots.
	MaxOpen int64
}

// Attrs are the counters as log attributes (key=value pairs for
// slog.Logger.Info), for the summary a server logs when it stops.
func (st Stats) Attrs() []any {
	return []any{"requests", st.Requests, "served", st.Served, "errors", st.Errors, "timeouts", st.Timeouts,
		"garbage", st.Garbage, "not_found", st.NotFound, "bad_requests", st.BadRequests,
		"max_in_flight", st.MaxInFlight, "max_open", st.MaxOpen}
}

// Server serves synthetic respondents over the OpenAI HTTP API, as vLLM does
// for a real model: POST /v1/chat/completions, POST /v1/completions,
// GET /v1/models and GET /health. It is a test double and a benchmark
// target, not a language model: it recognises the prompts that agent.Render
// writes, answers from its Respondents (the synthetic respondents of package llm), and says it is synthetic in
// the X-Society-Backend header, the system fingerprint and the model list.
//
// # Prompts
//
// The persona is recovered from the value prefix (agent.Prefix, either
// style) found as a line of the system message or at the start of a
// completion prompt; a prompt without a known prefix is answered by a
// persona without a dominant value. The item is recovered from its text
// (every built-in instrument); when the text quotes several items, the last
// one is the question. A prompt with no known item is answered from a broad,
// nearly uniform distribution centred on its scale, which is read from the
// last "from X to Y" in the prompt (within 0 to 10), else 1 to 6.
//
// # Sampling
//
// temperature 0 answers the most probable option; above 0 the distribution
// is sharpened or flattened as p^(1/T) (default 1). With a request seed the
// choices depend only on the server seed, the seed, the prompt and the
// choice index; at temperature 0 they depend on the prompt alone; otherwise
// a request counter is mixed in. n, max_tokens (or max_completion_tokens),
// stop, logprobs and top_logprobs (chat), logprobs as a count (completions)
// behave as in the OpenAI API, with words standing in for tokens in usage.
// The first token's top log-probabilities list the scale's digits with the
// synthetic probabilities scaled by 0.98 and the token " I" with the
// remaining 0.02, so that clients see a realistic covered mass below one.
// They are the raw model probabilities, whatever the temperature, as vLLM
// reports by default. vLLM's structured_outputs {"choice": [...]} (and the
// older guided_choice) restrict the text to one of the choices, chosen by
// the probability of the answer each names (a number on the scale or a
// label); guided output is never garbage. Unknown request fields are
// ignored; stream is refused.
//
// # Text
//
// Sampled text varies in form as model output does: about 70% the digit
// alone ("4"), 15% digit and label ("4 - Somewhat like me"), 10% the label
// alone, 5% a sentence ("I'd say 4."). Garbage is a refusal, an empty text
// or a range ("Somewhere between 2 and 5.").
type Server struct {
	syn    Respondents
	opt    Options
	slots  chan struct{} // one token per request in service; nil when unbounded
	index  *srvIndex
	models map[string]bool

	next        atomic.Uint64 // request counter: ids, fault draws, unseeded sampling
	requests    atomic.Int64
	served      atomic.Int64
	errored     atomic.Int64
	garbage     atomic.Int64
	timeouts    atomic.Int64
	notFound    atomic.Int64
	badRequests atomic.Int64
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
	open        atomic.Int64
	maxOpen     atomic.Int64
}

// New returns a server answering from s. Rates are clamped to [0, 1].
func New(s Respondents, o Options) *Server {
	if s == nil {
		panic("modelserver.New: nil Respondents")
	}
	clamp := func(x float64) float64 { return min(max(x, 0), 1) }
	o.ErrorRate = clamp(o.ErrorRate)
	o.GarbageRate = clamp(o.GarbageRate)
	o.TimeoutRate = clamp(o.TimeoutRate)
	o.Models = slices.Clone(o.Models)
	srv := &Server{syn: s, opt: o, index: srvNewIndex()}
	if o.Slots > 0 {
		srv.slots = make(chan struct{}, o.Slots)
	}
	if len(o.Models) > 0 {
		srv.models = make(map[string]bool, len(o.Models))
		for _, m := range o.Models {
			srv.models[m] = true
		}
	}
	return srv
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	return Stats{
		Requests:    s.requests.Load(),
		Served:      s.served.Load(),
		Errors:      s.errored.Load(),
		Garbage:     s.garbage.Load(),
		Timeouts:    s.timeouts.Load(),
		NotFound:    s.notFound.Load(),
		BadRequests: s.badRequests.Load(),
		MaxInFlight: s.maxInFlight.Load(),
		MaxOpen:     s.maxOpen.Load(),
	}
}

// srvMaxBody bounds a request body: agent prompts are a few kilobytes, and a
// client sending megabytes is broken.
const srvMaxBody = 8 << 20

// ServeHTTP routes the OpenAI endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(backendHeader, syntheticName)
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch path {
	case "/health":
		if !s.method(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		w.WriteHeader(http.StatusOK)
	case "/v1/models":
		if !s.method(w, r, http.MethodGet) {
			return
		}
		s.listModels(w)
	case "/v1/chat/completions", "/v1/completions":
		if !s.method(w, r, http.MethodPost) {
			return
		}
		s.complete(w, r, path == "/v1/chat/completions")
	default:
		if id, ok := strings.CutPrefix(path, "/v1/models/"); ok && id != "" {
			if s.method(w, r, http.MethodGet) {
				s.retrieveModel(w, id)
			}
			return
		}
		s.notFound.Add(1)
		srvWriteError(w, http.StatusNotFound, "invalid_request_error", "not_found",
			fmt.Sprintf("invalid URL (%s %s)", r.Method, r.URL.Path))
	}
}

func (s *Server) method(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	if slices.Contains(allowed, r.Method) {
		return true
	}
	s.badRequests.Add(1)
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	srvWriteError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed",
		fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
	return false
}

// srvModel is an entry of the model list, and the reply of a model
// retrieved by name.
type srvModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func newSrvModel(name string) srvModel {
	return srvModel{ID: name, Object: "model", OwnedBy: "society-" + syntheticName}
}

// listModels lists the names of --models, or, when the server accepts any
// name, the name it answers a request without one under.
func (s *Server) listModels(w http.ResponseWriter) {
	names := s.opt.Models
	if len(names) == 0 {
		names = []string{syntheticName}
	}
	out := struct {
		Object string     `json:"object"`
		Data   []srvModel `json:"data"`
	}{Object: "list"}
	for _, n := range names {
		out.Data = append(out.Data, newSrvModel(n))
	}
	srvWriteJSON(w, http.StatusOK, out)
}

// retrieveModel answers GET /v1/models/{id} as OpenAI does: the model when
// the server would answer requests for it (any name, unless --models), a
// 404 otherwise. A client whose model the list does not name asks this to
// tell an accepted name from a wrong one.
func (s *Server) retrieveModel(w http.ResponseWriter, id string) {
	if _, ok := s.model(id); !ok {
		s.notFound.Add(1)
		srvWriteError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("the model %q does not exist (serving %s)", id, strings.Join(s.opt.Models, ", ")))
		return
	}
	srvWriteJSON(w, http.StatusOK, newSrvModel(id))
}

// srvFault is what the server does to a request instead of answering it.
type srvFault int

const (
	srvNoFault srvFault = iota
	srvRateLimited
	srvInternalError
	srvHang
)

// Keys of the server's independent random streams.
const (
	srvKeyFault uint64 = iota + 1
	srvKeyAnswer
	srvKeyFormat
	srvKeyGarbage
	srvKeyGarbageKind
)

func (s *Server) fault(req uint64) srvFault {
	u := agent.Uniform(s.opt.Seed, req, srvKeyFault)
	switch {
	case u < s.opt.ErrorRate/2:
		return srvRateLimited
	case u < s.opt.ErrorRate:
		return srvInternalError
	case u < s.opt.ErrorRate+s.opt.TimeoutRate:
		return srvHang
	}
	return srvNoFault
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request, chat bool) {
	s.requests.Add(1)
	raise(&s.maxOpen, s.open.Add(1))
	defer s.open.Add(-1)
	req := s.next.Add(1) - 1
	ctx := r.Context()

	var body srvRequest
	if err := srvDecode(w, r, &body); err != nil {
		s.badRequests.Add(1)
		srvWriteError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json",
			fmt.Sprintf("decode request body: %v", err))
		return
	}
	p, err := body.params(chat)
	if err != nil {
		s.badRequests.Add(1)
		srvWriteError(w, http.StatusBadRequest, "invalid_request_error", "invalid_request", err.Error())
		return
	}
	model, ok := s.model(body.Model)
	if !ok {
		s.notFound.Add(1)
		srvWriteError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("the model %q does not exist (serving %s)", body.Model, strings.Join(s.opt.Models, ", ")))
		return
	}

	switch s.fault(req) {
	case srvRateLimited:
		s.errored.Add(1)
		w.Header().Set("Retry-After", "0")
		srvWriteError(w, http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded",
			"synthetic rate limit: too many requests, retry later")
		return
	case srvInternalError:
		s.errored.Add(1)
		srvWriteError(w, http.StatusInternalServerError, "server_error", "internal_error",
			"synthetic internal error: the server failed while processing the request")
		return
	case srvHang:
		s.timeouts.Add(1)
		<-ctx.Done()
		return
	}

	if !s.acquire(ctx) {
		return
	}
	out, err := s.serve(ctx, req, model, chat, p)
	s.release()
	if err != nil {
		// The client gave up while its answer was being made: nobody reads
		// a response.
		return
	}
	srvWriteJSON(w, http.StatusOK, out)
	s.served.Add(1)
}

// acquire waits for a slot, or for the client to give up.
func (s *Server) acquire(ctx context.Context) bool {
	if s.slots != nil {
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			return false
		}
	}
	raise(&s.maxInFlight, s.inFlight.Add(1))
	return true
}

// raise sets peak to n when n is higher.
func raise(peak *atomic.Int64, n int64) {
	for {
		m := peak.Load()
		if n <= m || peak.CompareAndSwap(m, n) {
			return
		}
	}
}

func (s *Server) release() {
	s.inFlight.Add(-1)
	if s.slots != nil {
		<-s.slots
	}
}

// serve holds the slot for the configured latency and builds the response.
func (s *Server) serve(ctx context.Context, req uint64, model string, chat bool, p srvParams) (any, error) {
	if s.opt.Latency > 0 {
		t := time.NewTimer(s.opt.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	if chat {
		return s.chatResponse(req, model, p), nil
	}
	return s.completionResponse(req, model, p), nil
}

func (s *Server) model(name string) (string, bool) {
	if s.models == nil {
		if name == "" {
			name = syntheticName
		}
		return name, true
	}
	if name == "" {
		return s.opt.Models[0], true
	}
	return name, s.models[name]
}

type srvErrorBody struct {
	Error srvErrorDetail `json:"error"`
}

type srvErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

func srvWriteError(w http.ResponseWriter, status int, typ, code, msg string) {
	srvWriteJSON(w, status, srvErrorBody{Error: srvErrorDetail{Message: msg, Type: typ, Code: code}})
}

// srvBuffers are the bodies being read and the replies being written,
// reused from request to request.
var srvBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// srvDecode reads a request body of at most srvMaxBody bytes into v (see
// srvDecodeRequest).
func srvDecode(w http.ResponseWriter, r *http.Request, v *srvRequest) error {
	buf := srvBuffers.Get().(*bytes.Buffer)
	defer func() {
		buf.Reset()
		srvBuffers.Put(buf)
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, srvMaxBody)); err != nil {
		return err
	}
	return srvDecodeRequest(buf.Bytes(), v)
}

func srvWriteJSON(w http.ResponseWriter, status int, v any) {
	buf := srvBuffers.Get().(*bytes.Buffer)
	defer func() {
		buf.Reset()
		srvBuffers.Put(buf)
	}()
	// Encode writes what json.Marshal returns and a newline.
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		// Every value written is built here from finite numbers and strings.
		panic(fmt.Sprintf("llm server: encode response: %v", err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
