package modelserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/llm"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

func srvTestSynthetic(t testing.TB) *llm.Synthetic {
	t.Helper()
	means, err := population.HumanMeans("pvq40_smacof")
	if err != nil {
		t.Fatal(err)
	}
	return llm.NewSynthetic(1, means)
}

func srvTestServer(t *testing.T, o Options) (*Server, *httptest.Server) {
	t.Helper()
	s := New(srvTestSynthetic(t), o)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func srvTestInstrument(t *testing.T, name string) *questionnaires.Instrument {
	t.Helper()
	in, err := questionnaires.Builtin(name)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// srvTestPost sends a JSON body and returns the status and the raw body.
func srvTestPost(t *testing.T, url string, body any) (int, http.Header, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, out
}

func srvTestChatBody(q *agent.Question, extra map[string]any) map[string]any {
	pr := agent.Render(q)
	var msgs []map[string]any
	if pr.System != "" {
		msgs = append(msgs, map[string]any{"role": "system", "content": pr.System})
	}
	msgs = append(msgs, map[string]any{"role": "user", "content": pr.User})
	body := map[string]any{"model": "m", "messages": msgs}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

func srvTestCompletionPrompt(q *agent.Question) string {
	pr := agent.Render(q)
	if pr.System == "" {
		return pr.User
	}
	return pr.System + "\n\n" + pr.User
}

// srvTestChat posts a chat request and decodes it with the go-openai types,
// which is how clients of this server read it.
func srvTestChat(t *testing.T, ts *httptest.Server, body map[string]any) openai.ChatCompletionResponse {
	t.Helper()
	status, _, raw := srvTestPost(t, ts.URL+"/v1/chat/completions", body)
	if status != http.StatusOK {
		t.Fatalf("chat status: got %d, want 200 (%s)", status, raw)
	}
	var out openai.ChatCompletionResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode chat response: %v\n%s", err, raw)
	}
	return out
}

func srvTestCompletion(t *testing.T, ts *httptest.Server, body map[string]any) openai.CompletionResponse {
	t.Helper()
	status, _, raw := srvTestPost(t, ts.URL+"/v1/completions", body)
	if status != http.StatusOK {
		t.Fatalf("completion status: got %d, want 200 (%s)", status, raw)
	}
	var out openai.CompletionResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode completion response: %v\n%s", err, raw)
	}
	return out
}

var srvTestNumber = regexp.MustCompile(`\d+`)

// srvTestParse is a deliberately plain reader of answers: a scale label, or
// exactly one number on the scale once labels are removed.
func srvTestParse(text string, sc questionnaires.Scale) (int, bool) {
	s := strings.ToLower(strings.TrimSpace(text))
	if s == "" {
		return 0, false
	}
	type lab struct {
		text  string
		value int
	}
	var labs []lab
	for x := sc.Min; x <= sc.Max; x++ {
		labs = append(labs, lab{strings.ToLower(sc.Label(x)), x})
	}
	sort.SliceStable(labs, func(i, j int) bool { return len(labs[i].text) > len(labs[j].text) })
	found := map[int]bool{}
	for _, l := range labs {
		if l.text != "" && strings.Contains(s, l.text) {
			found[l.value] = true
			s = strings.ReplaceAll(s, l.text, " ")
		}
	}
	nums := srvTestNumber.FindAllString(s, -1)
	switch {
	case len(nums) == 1:
		var x int
		for _, c := range nums[0] {
			x = 10*x + int(c-'0')
		}
		return x, sc.Valid(x) && (len(found) == 0 || found[x])
	case len(nums) == 0 && len(found) == 1:
		for x := range found {
			return x, true
		}
	}
	return 0, false
}

func TestServerUnderstand(t *testing.T) {
	pvq := srvTestInstrument(t, "pvq40")
	ebq := srvTestInstrument(t, "ebq")
	po := agent.Persona{Value: values.Power, Style: agent.StyleDescription}
	un := agent.Persona{Value: values.Universalism, Style: agent.StyleName}
	none := agent.Persona{Value: values.None, Style: agent.StyleNone}
	q := func(p agent.Persona, in *questionnaires.Instrument, item int) *agent.Question {
		return &agent.Question{Persona: p, Instrument: in, Item: item}
	}
	chat := func(q *agent.Question) string {
		pr := agent.Render(q)
		return pr.System + "\n\n" + pr.User
	}
	withContext := q(po, pvq, 7)
	withContext.Context = "Earlier you read: " + pvq.Items[2].Text + "\n\n" + pvq.Items[2].Text
	x := srvNewIndex()
	cases := []struct {
		name    string
		prompt  string
		persona agent.Persona
		in      *questionnaires.Instrument
		item    int
		lo, hi  int
	}{
		{"chat description", chat(q(po, pvq, 1)), po, pvq, 1, 1, 6},
		{"chat name", chat(q(un, pvq, 39)), un, pvq, 39, 1, 6},
		{"completion prompt", srvTestCompletionPrompt(q(po, ebq, 10)), po, ebq, 10, 0, 4},
		{"unprimed", srvTestCompletionPrompt(q(none, pvq, 5)), none, pvq, 5, 1, 6},
		{"context quotes another item", chat(withContext), po, pvq, 7, 1, 6},
		{"inline prefix", agent.Prefix(un) + " " + pvq.Items[4].Text, un, pvq, 4, 1, 6},
		{"unknown item with scale", agent.Prefix(po) + "\n\nDo you like tea? Answer with a single number from 0 to 4.", po, nil, -1, 0, 4},
		{"unknown item", "Do you like tea?", none, nil, -1, 1, 6},
		{"implausible scale", "Pick a number from 1 to 100.", none, nil, -1, 1, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := x.understand(c.prompt)
			if got.persona != c.persona {
				t.Errorf("persona: got %+v, want %+v", got.persona, c.persona)
			}
			if got.in != c.in || got.item != c.item {
				t.Errorf("item: got %v #%d, want %v #%d", srvTestName(got.in), got.item, srvTestName(c.in), c.item)
			}
			if got.lo != c.lo || got.hi != c.hi {
				t.Errorf("scale: got %d..%d, want %d..%d", got.lo, got.hi, c.lo, c.hi)
			}
		})
	}
}

func srvTestName(in *questionnaires.Instrument) string {
	if in == nil {
		return "<unknown>"
	}
	return in.Name
}

func TestServerFollowsPersona(t *testing.T) {
	_, ts := srvTestServer(t, Options{Seed: 3})
	pvq := srvTestInstrument(t, "pvq40")
	mean := func(t *testing.T, chat bool, p agent.Persona, key string) float64 {
		t.Helper()
		sum, n := 0, 0
		for i, item := range pvq.Items {
			if item.Key != key {
				continue
			}
			q := &agent.Question{Persona: p, Instrument: pvq, Item: i}
			var texts []string
			if chat {
				resp := srvTestChat(t, ts, srvTestChatBody(q, map[string]any{"n": 40, "temperature": 1.0}))
				for _, c := range resp.Choices {
					texts = append(texts, c.Message.Content)
				}
			} else {
				resp := srvTestCompletion(t, ts, map[string]any{"model": "m", "prompt": srvTestCompletionPrompt(q), "n": 40})
				for _, c := range resp.Choices {
					texts = append(texts, c.Text)
				}
			}
			for _, text := range texts {
				x, ok := srvTestParse(text, pvq.Scale)
				if !ok {
					t.Fatalf("answer %q does not parse", text)
				}
				sum += x
				n++
			}
		}
		return float64(sum) / float64(n)
	}
	cases := []struct {
		name      string
		chat      bool
		persona   values.Value
		high, low string
	}{
		{"chat power", true, values.Power, "PO", "UN"},
		{"chat universalism", true, values.Universalism, "UN", "PO"},
		{"completion power", false, values.Power, "PO", "UN"},
		{"completion tradition", false, values.Tradition, "TR", "ST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := agent.Persona{Value: c.persona, Style: agent.StyleDescription}
			hi, lo := mean(t, c.chat, p, c.high), mean(t, c.chat, p, c.low)
			if hi <= lo {
				t.Errorf("mean answer to %s items %.2f, to %s items %.2f: got %s ≤ %s, want higher", c.high, hi, c.low, lo, c.high, c.low)
			}
		})
	}
}

func TestServerChoices(t *testing.T) {
	_, ts := srvTestServer(t, Options{Seed: 5})
	pvq := srvTestInstrument(t, "pvq40")
	q := &agent.Question{Persona: agent.Persona{Value: values.Hedonism, Style: agent.StyleDescription}, Instrument: pvq, Item: 9}
	t.Run("chat n", func(t *testing.T) {
		resp := srvTestChat(t, ts, srvTestChatBody(q, map[string]any{"n": 7}))
		if len(resp.Choices) != 7 {
			t.Fatalf("choices: got %d, want 7", len(resp.Choices))
		}
		for i, c := range resp.Choices {
			if c.Index != i {
				t.Errorf("choice %d index: got %d, want %d", i, c.Index, i)
			}
			if c.Message.Role != "assistant" {
				t.Errorf("choice %d role: got %q, want assistant", i, c.Message.Role)
			}
		}
		if resp.Usage.PromptTokens == 0 || resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
			t.Errorf("usage: got %+v, want prompt > 0 and total = prompt + completion", resp.Usage)
		}
	})
	t.Run("completion prompts times n", func(t *testing.T) {
		p := srvTestCompletionPrompt(q)
		resp := srvTestCompletion(t, ts, map[string]any{"prompt": []string{p, p}, "n": 3})
		if len(resp.Choices) != 6 {
			t.Fatalf("choices: got %d, want 6", len(resp.Choices))
		}
		for i, c := range resp.Choices {
			if c.Index != i {
				t.Errorf("choice %d index: got %d, want %d", i, c.Index, i)
			}
		}
	})
	t.Run("temperature 0 is the mode", func(t *testing.T) {
		s := srvTestSynthetic(t)
		for _, v := range []values.Value{values.Power, values.Benevolence, values.None} {
			p := agent.Persona{Value: v, Style: agent.StyleDescription}
			for _, item := range []int{0, 1, 2, 11} {
				dist := s.Distribution(pvq, item, p)
				mode := 0
				for k := range dist {
					if dist[k] > dist[mode] {
						mode = k
					}
				}
				qq := &agent.Question{Persona: p, Instrument: pvq, Item: item}
				resp := srvTestChat(t, ts, srvTestChatBody(qq, map[string]any{"n": 5, "temperature": 0}))
				for _, c := range resp.Choices {
					x, ok := srvTestParse(c.Message.Content, pvq.Scale)
					if !ok || x != pvq.Scale.Min+mode {
						t.Errorf("%s item %d: got %q, want the mode %d", v, item+1, c.Message.Content, pvq.Scale.Min+mode)
					}
				}
			}
		}
	})
	texts := func(body map[string]any) []string {
		resp := srvTestChat(t, ts, body)
		var out []string
		for _, c := range resp.Choices {
			out = append(out, c.Message.Content)
		}
		return out
	}
	t.Run("seed repeats", func(t *testing.T) {
		a := texts(srvTestChatBody(q, map[string]any{"n": 30, "seed": 11}))
		b := texts(srvTestChatBody(q, map[string]any{"n": 30, "seed": 11}))
		c := texts(srvTestChatBody(q, map[string]any{"n": 30, "seed": 12}))
		if strings.Join(a, "|") != strings.Join(b, "|") {
			t.Errorf("same seed: got %q then %q, want equal", a, b)
		}
		if strings.Join(a, "|") == strings.Join(c, "|") {
			t.Errorf("seeds 11 and 12: got %q both times, want different samples", a)
		}
	})
	t.Run("stop and max_tokens", func(t *testing.T) {
		for _, c := range []struct {
			name       string
			extra      map[string]any
			stops      []string
			maxTokens  int
			wantFinish string
		}{
			{"stop string", map[string]any{"stop": " -"}, []string{" -"}, 0, "stop"},
			{"stop list", map[string]any{"stop": []string{" -", "."}}, []string{" -", "."}, 0, "stop"},
			{"max_tokens", map[string]any{"max_tokens": 1}, nil, 1, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				extra := map[string]any{"n": 50, "seed": 1}
				for k, v := range c.extra {
					extra[k] = v
				}
				resp := srvTestChat(t, ts, srvTestChatBody(q, extra))
				for _, ch := range resp.Choices {
					text := ch.Message.Content
					for _, stop := range c.stops {
						if strings.Contains(text, stop) {
							t.Errorf("got %q, want text cut before %q", text, stop)
						}
					}
					if c.maxTokens > 0 && len(srvTokens(text)) > c.maxTokens {
						t.Errorf("got %q, want at most %d token", text, c.maxTokens)
					}
					if c.wantFinish != "" && string(ch.FinishReason) != c.wantFinish {
						t.Errorf("finish reason: got %q, want %q", ch.FinishReason, c.wantFinish)
					}
				}
			})
		}
	})
}

func TestServerLogprobs(t *testing.T) {
	s := srvTestSynthetic(t)
	_, ts := srvTestServer(t, Options{Seed: 9})
	cases := []struct {
		instrument string
		item       int
		persona    agent.Persona
	}{
		{"pvq40", 1, agent.Persona{Value: values.Power, Style: agent.StyleDescription}},
		{"pvq40", 2, agent.Persona{Value: values.Power, Style: agent.StyleName}},
		{"bfi2", 4, agent.Persona{Value: values.Stimulation, Style: agent.StyleDescription}},
		{"ebq", 20, agent.Persona{Value: values.None, Style: agent.StyleNone}},
		{"charity", 0, agent.Persona{Value: values.Benevolence, Style: agent.StyleDescription}},
	}
	check := func(t *testing.T, top map[string]float64, in *questionnaires.Instrument, want []float64) {
		t.Helper()
		covered := 0.0
		probs := make([]float64, len(want))
		for k := range want {
			lp, ok := top[strconv.Itoa(in.Scale.Min+k)]
			if !ok {
				t.Fatalf("top log-probabilities %v: option %d missing", top, in.Scale.Min+k)
			}
			probs[k] = math.Exp(lp)
			covered += probs[k]
		}
		if math.Abs(covered-0.98) > 1e-5 {
			t.Errorf("covered mass: got %.6f, want 0.98", covered)
		}
		for k := range want {
			if got := probs[k] / covered; math.Abs(got-want[k]) > 1e-5 {
				t.Errorf("P(%d): got %.6f, want %.6f", in.Scale.Min+k, got, want[k])
			}
		}
	}
	for _, c := range cases {
		in := srvTestInstrument(t, c.instrument)
		q := &agent.Question{Persona: c.persona, Instrument: in, Item: c.item}
		want := s.Distribution(in, c.item, c.persona)
		t.Run(c.instrument+" chat", func(t *testing.T) {
			resp := srvTestChat(t, ts, srvTestChatBody(q, map[string]any{"max_tokens": 1, "logprobs": true, "top_logprobs": 20, "temperature": 0}))
			ch := resp.Choices[0]
			if ch.LogProbs == nil || len(ch.LogProbs.Content) != 1 {
				t.Fatalf("logprobs: got %+v, want one position", ch.LogProbs)
			}
			top := map[string]float64{}
			for _, tl := range ch.LogProbs.Content[0].TopLogProbs {
				top[tl.Token] = tl.LogProb
			}
			if _, ok := top[" I"]; !ok {
				t.Errorf("top log-probabilities %v: want the non-answer token \" I\"", top)
			}
			check(t, top, in, want)
		})
		t.Run(c.instrument+" completion", func(t *testing.T) {
			resp := srvTestCompletion(t, ts, map[string]any{"prompt": srvTestCompletionPrompt(q), "max_tokens": 1, "logprobs": 10})
			lp := resp.Choices[0].LogProbs
			if len(lp.TopLogprobs) != 1 {
				t.Fatalf("logprobs: got %d positions, want 1", len(lp.TopLogprobs))
			}
			top := map[string]float64{}
			for tok, x := range lp.TopLogprobs[0] {
				top[tok] = float64(x)
			}
			check(t, top, in, want)
		})
	}
	t.Run("top_logprobs bounds the list", func(t *testing.T) {
		q := &agent.Question{Persona: cases[0].persona, Instrument: srvTestInstrument(t, "pvq40"), Item: 0}
		resp := srvTestChat(t, ts, srvTestChatBody(q, map[string]any{"logprobs": true, "top_logprobs": 3}))
		tops := resp.Choices[0].LogProbs.Content[0].TopLogProbs
		if len(tops) != 3 {
			t.Fatalf("top_logprobs: got %d entries, want 3", len(tops))
		}
		for i := 1; i < len(tops); i++ {
			if tops[i].LogProb > tops[i-1].LogProb {
				t.Errorf("top_logprobs order: got %v, want best first", tops)
			}
		}
	})
}

func TestServerStructuredOutputs(t *testing.T) {
	_, ts := srvTestServer(t, Options{Seed: 2, GarbageRate: 0.5})
	pvq := srvTestInstrument(t, "pvq40")
	q := &agent.Question{Persona: agent.Persona{Value: values.Security, Style: agent.StyleDescription}, Instrument: pvq, Item: 4}
	cases := []struct {
		name    string
		field   string
		choices []string
	}{
		{"all digits", "structured_outputs", []string{"1", "2", "3", "4", "5", "6"}},
		{"two digits", "structured_outputs", []string{"1", "2"}},
		{"labels", "structured_outputs", []string{"Somewhat like me", "Like me", "Very much like me"}},
		{"no answers named", "structured_outputs", []string{"yes", "no"}},
		{"guided_choice", "guided_choice", []string{"5", "6"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var field any = map[string]any{"choice": c.choices}
			if c.field == "guided_choice" {
				field = c.choices
			}
			resp := srvTestChat(t, ts, srvTestChatBody(q, map[string]any{"n": 100, c.field: field}))
			seen := map[string]int{}
			for _, ch := range resp.Choices {
				seen[ch.Message.Content]++
			}
			for text := range seen {
				if !slices.Contains(c.choices, text) {
					t.Errorf("got %q, want one of %q", text, c.choices)
				}
			}
			if len(seen) < 2 {
				t.Errorf("got only %v in 100 samples, want more than one choice", seen)
			}
		})
	}
}

// srvTestBounds is a ±5 standard deviation binomial interval: wide enough
// never to fail by chance (the draws are seeded anyway), narrow enough to
// catch a wrong rate.
func srvTestBounds(n int, p float64) (lo, hi float64) {
	sd := math.Sqrt(float64(n) * p * (1 - p))
	return float64(n)*p - 5*sd, float64(n)*p + 5*sd
}

func TestServerErrorRate(t *testing.T) {
	const n = 2000
	const rate = 0.2
	s, ts := srvTestServer(t, Options{Seed: 4, ErrorRate: rate})
	pvq := srvTestInstrument(t, "pvq40")
	body := srvTestChatBody(&agent.Question{Persona: agent.Persona{Value: values.Achievement}, Instrument: pvq, Item: 3}, nil)
	counts := map[int]int{}
	for range n {
		status, h, raw := srvTestPost(t, ts.URL+"/v1/chat/completions", body)
		counts[status]++
		switch status {
		case http.StatusOK:
		case http.StatusTooManyRequests, http.StatusInternalServerError:
			if status == http.StatusTooManyRequests && h.Get("Retry-After") != "0" {
				t.Errorf("429 Retry-After: got %q, want 0", h.Get("Retry-After"))
			}
			var e openai.ErrorResponse
			if err := json.Unmarshal(raw, &e); err != nil || e.Error == nil || e.Error.Message == "" {
				t.Fatalf("error body %s: want an OpenAI error (%v)", raw, err)
			}
		default:
			t.Fatalf("status: got %d, want 200, 429 or 500", status)
		}
	}
	errs := counts[429] + counts[500]
	for _, c := range []struct {
		name string
		got  int
		p    float64
	}{{"errors", errs, rate}, {"429", counts[429], rate / 2}, {"500", counts[500], rate / 2}} {
		lo, hi := srvTestBounds(n, c.p)
		if float64(c.got) < lo || float64(c.got) > hi {
			t.Errorf("%s in %d requests: got %d, want %.0f..%.0f", c.name, n, c.got, lo, hi)
		}
	}
	st := s.Stats()
	if st.Errors != int64(errs) || st.Requests != n || st.Served != int64(counts[200]) {
		t.Errorf("stats: got %+v, want %d requests, %d errors, %d served", st, n, errs, counts[200])
	}
}

func TestServerGarbageRate(t *testing.T) {
	const requests, perRequest = 100, 20
	const rate = 0.1
	s, ts := srvTestServer(t, Options{Seed: 6, GarbageRate: rate})
	pvq := srvTestInstrument(t, "pvq40")
	bad := 0
	kinds := map[string]bool{}
	for i := range requests {
		q := &agent.Question{Persona: agent.Persona{Value: values.Value(i % values.N), Style: agent.StyleDescription}, Instrument: pvq, Item: i % len(pvq.Items)}
		resp := srvTestChat(t, ts, srvTestChatBody(q, map[string]any{"n": perRequest}))
		for _, c := range resp.Choices {
			if _, ok := srvTestParse(c.Message.Content, pvq.Scale); !ok {
				bad++
				kinds[c.Message.Content] = true
			}
		}
	}
	lo, hi := srvTestBounds(requests*perRequest, rate)
	if float64(bad) < lo || float64(bad) > hi {
		t.Errorf("unparseable answers in %d: got %d, want %.0f..%.0f", requests*perRequest, bad, lo, hi)
	}
	if got := s.Stats().Garbage; got != int64(bad) {
		t.Errorf("stats garbage: got %d, want %d (the unparseable answers)", got, bad)
	}
	if len(kinds) < 3 {
		t.Errorf("garbage kinds: got %v, want refusals, empty text and ranges", kinds)
	}
}

// TestServerSlots sends ten requests at once to a server with two slots
// of 50 ms, on the synctest clock: two are in service at a time, never
// more, and the last answer comes after five rounds.
func TestServerSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, hc, url, _ := srvTestPipeServer(t, Options{Seed: 1, Slots: 2, Latency: 50 * time.Millisecond})
		pvq := srvTestInstrument(t, "pvq40")
		body, err := json.Marshal(srvTestChatBody(&agent.Question{Persona: agent.Persona{Value: values.Power}, Instrument: pvq, Item: 1}, nil))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var wg sync.WaitGroup
		statuses := make([]int, 10)
		for i := range statuses {
			wg.Go(func() {
				resp, err := hc.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		for i, st := range statuses {
			if st != http.StatusOK {
				t.Errorf("request %d: got status %d, want 200", i, st)
			}
		}
		st := s.Stats()
		if st.MaxInFlight != 2 {
			t.Errorf("max in flight: got %d, want 2", st.MaxInFlight)
		}
		if st.Served != 10 {
			t.Errorf("served: got %d, want 10", st.Served)
		}
		if want := 250 * time.Millisecond; elapsed != want {
			t.Errorf("ten requests took %v on the test clock, want %v (five rounds of two)", elapsed, want)
		}
	})
}

// srvPipeListener is a net.Listener whose connections are in-memory
// pipes, so that a server and its client run inside a synctest bubble:
// the server's latency runs on the bubble's clock, and synctest.Wait
// returns once every request has gone as far as it can.
type srvPipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *srvPipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *srvPipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *srvPipeListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000}
}

func (l *srvPipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// srvTestPipeServer starts a Server behind an httptest server on
// in-memory pipes, in the calling synctest bubble, and returns it with a
// client of it, its URL and the count of requests whose handler has
// returned; server and client are closed when the test ends.
func srvTestPipeServer(t *testing.T, o Options) (*Server, *http.Client, string, *atomic.Int64) {
	t.Helper()
	s := New(srvTestSynthetic(t), o)
	l := &srvPipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	returned := new(atomic.Int64)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r)
		returned.Add(1)
	}))
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	tr := &http.Transport{DialContext: l.dial}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ts.Close()
	})
	return s, &http.Client{Transport: tr}, ts.URL, returned
}

// TestServerCancellation runs on the synctest clock: synctest.Wait
// returns once each request has gone as far as it can (hanging, queued or
// in service), so the test reads the server's state then, without
// polling it.
func TestServerCancellation(t *testing.T) {
	pvq := srvTestInstrument(t, "pvq40")
	body, err := json.Marshal(srvTestChatBody(&agent.Question{Persona: agent.Persona{Value: values.Power}, Instrument: pvq, Item: 1}, nil))
	if err != nil {
		t.Fatal(err)
	}
	send := func(ctx context.Context, hc *http.Client, url string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(body))
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	t.Run("timeout hangs until the client gives up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, hc, url, _ := srvTestPipeServer(t, Options{TimeoutRate: 1})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- send(ctx, hc, url) }()
			synctest.Wait()
			if got := s.Stats().Timeouts; got != 1 {
				t.Fatalf("timeouts: got %d, want 1 (the request hangs)", got)
			}
			select {
			case err := <-done:
				t.Fatalf("hung request ended before its client gave up: %v", err)
			default:
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("hung request: got %v, want context canceled", err)
			}
		})
	})
	t.Run("queued request leaves when its client gives up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, hc, url, returned := srvTestPipeServer(t, Options{Slots: 1, Latency: time.Hour})
			ctxA, cancelA := context.WithCancel(context.Background())
			ctxB, cancelB := context.WithCancel(context.Background())
			doneA, doneB := make(chan error, 1), make(chan error, 1)
			go func() { doneA <- send(ctxA, hc, url) }()
			synctest.Wait()
			if st := s.Stats(); st.MaxInFlight != 1 {
				t.Fatalf("stats: got %+v, want request A in service", st)
			}
			go func() { doneB <- send(ctxB, hc, url) }()
			synctest.Wait()
			// B is open (queued) while A is in service.
			if st := s.Stats(); st.Requests != 2 || st.MaxOpen != 2 || st.MaxInFlight != 1 {
				t.Fatalf("stats: got %+v, want B queued behind A", st)
			}
			cancelB()
			if err := <-doneB; !errors.Is(err, context.Canceled) {
				t.Errorf("queued request: got %v, want context canceled", err)
			}
			synctest.Wait()
			if got := returned.Load(); got != 1 {
				t.Fatalf("after B's client gave up %d handlers have returned, want 1 (B left the queue, A in service)", got)
			}
			cancelA()
			if err := <-doneA; !errors.Is(err, context.Canceled) {
				t.Errorf("request in service: got %v, want context canceled", err)
			}
			synctest.Wait()
			if got := returned.Load(); got != 2 {
				t.Errorf("%d handlers have returned, want both", got)
			}
			if st := s.Stats(); st.Served != 0 || st.MaxInFlight != 1 || st.MaxOpen != 2 {
				t.Errorf("stats: got %+v, want nothing served, one in service and two open at most", st)
			}
		})
	})
}

func TestServerHTTP(t *testing.T) {
	srv, ts := srvTestServer(t, Options{Models: []string{"synthetic-a", "synthetic-b"}})
	pvq := srvTestInstrument(t, "pvq40")
	good := srvTestChatBody(&agent.Question{Persona: agent.Persona{Value: values.Power}, Instrument: pvq, Item: 1}, map[string]any{"model": "synthetic-b"})
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		m[k] = v
		return m
	}
	cases := []struct {
		name      string
		method    string
		path      string
		body      any
		status    int
		errorBody bool
	}{
		{"health", http.MethodGet, "/health", nil, 200, false},
		{"models", http.MethodGet, "/v1/models", nil, 200, false},
		{"chat", http.MethodPost, "/v1/chat/completions", good, 200, false},
		{"unknown fields tolerated", http.MethodPost, "/v1/chat/completions", with("repetition_penalty", 1.1), 200, false},
		{"content parts", http.MethodPost, "/v1/chat/completions", with("messages", []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": pvq.Items[0].Text}}}}), 200, false},
		{"default model", http.MethodPost, "/v1/chat/completions", with("model", ""), 200, false},
		{"unknown route", http.MethodPost, "/v1/embeddings", good, 404, true},
		{"wrong method", http.MethodGet, "/v1/chat/completions", nil, 405, true},
		{"bad json", http.MethodPost, "/v1/chat/completions", `{"model": "x", "messages": [`, 400, true},
		{"wrong type", http.MethodPost, "/v1/chat/completions", `{"messages": "hello"}`, 400, true},
		{"no messages", http.MethodPost, "/v1/chat/completions", with("messages", []any{}), 400, true},
		{"no prompt", http.MethodPost, "/v1/completions", map[string]any{"model": "synthetic-a"}, 400, true},
		{"token prompt", http.MethodPost, "/v1/completions", map[string]any{"prompt": []int{1, 2}}, 400, true},
		{"n 0", http.MethodPost, "/v1/chat/completions", with("n", 0), 400, true},
		{"negative temperature", http.MethodPost, "/v1/chat/completions", with("temperature", -1), 400, true},
		{"too many top_logprobs", http.MethodPost, "/v1/chat/completions", with("top_logprobs", 21), 400, true},
		{"max_tokens 0", http.MethodPost, "/v1/chat/completions", with("max_tokens", 0), 400, true},
		{"stream", http.MethodPost, "/v1/chat/completions", with("stream", true), 400, true},
		{"unknown model", http.MethodPost, "/v1/chat/completions", with("model", "gpt-4"), 404, true},
		{"retrieve model", http.MethodGet, "/v1/models/synthetic-b", nil, 200, false},
		{"retrieve unknown model", http.MethodGet, "/v1/models/gpt-4", nil, 404, true},
		{"retrieve by post", http.MethodPost, "/v1/models/synthetic-b", nil, 405, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r io.Reader
			switch b := c.body.(type) {
			case nil:
			case string:
				r = strings.NewReader(b)
			default:
				raw, err := json.Marshal(b)
				if err != nil {
					t.Fatal(err)
				}
				r = bytes.NewReader(raw)
			}
			req, err := http.NewRequest(c.method, ts.URL+c.path, r)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status: got %d, want %d (%s)", resp.StatusCode, c.status, raw)
			}
			if got := resp.Header.Get("X-Society-Backend"); got != llm.SyntheticName {
				t.Errorf("X-Society-Backend: got %q, want %q", got, llm.SyntheticName)
			}
			if c.errorBody {
				var e openai.ErrorResponse
				if err := json.Unmarshal(raw, &e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" {
					t.Errorf("body %s: want an OpenAI error with message and type (%v)", raw, err)
				}
			}
		})
	}
	// Every refusal is counted, so that the summary at stop shows a client
	// asking for the wrong path or model.
	var notFound, bad int64
	for _, c := range cases {
		switch c.status {
		case 404:
			notFound++
		case 400, 405:
			bad++
		}
	}
	if st := srv.Stats(); st.NotFound != notFound || st.BadRequests != bad {
		t.Errorf("stats: got %d not found and %d bad requests, want %d and %d", st.NotFound, st.BadRequests, notFound, bad)
	}
	t.Run("model list", func(t *testing.T) {
		resp, err := http.Get(ts.URL + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list openai.ModelsList
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range list.Models {
			ids = append(ids, m.ID)
		}
		if strings.Join(ids, ",") != "synthetic-a,synthetic-b" {
			t.Errorf("models: got %v, want [synthetic-a synthetic-b]", ids)
		}
	})
}

// TestServerRetrieveAnyModel: a server that accepts any model name lists
// only its default name, and says yes to any name retrieved (GET
// /v1/models/{id}, with the slashes of a Hugging Face name), so that a
// client can tell an accepted name from a wrong one.
func TestServerRetrieveAnyModel(t *testing.T) {
	_, ts := srvTestServer(t, Options{})
	const name = "meta-llama/Meta-Llama-3-8B-Instruct"
	resp, err := http.Get(ts.URL + "/v1/models/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m openai.Model
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK || m.ID != name {
		t.Errorf("retrieve %s: got status %d, id %q (%v); want 200 and the name", name, resp.StatusCode, m.ID, err)
	}
}

// TestServerGoOpenAI talks to the server through go-openai's own client,
// as the project's OpenAI backend does.
func TestServerGoOpenAI(t *testing.T) {
	_, ts := srvTestServer(t, Options{Seed: 8})
	cfg := openai.DefaultConfig("unused")
	cfg.BaseURL = ts.URL + "/v1"
	client := openai.NewClientWithConfig(cfg)
	pvq := srvTestInstrument(t, "pvq40")
	q := &agent.Question{Persona: agent.Persona{Value: values.SelfDirection, Style: agent.StyleDescription}, Instrument: pvq, Item: 0}
	pr := agent.Render(q)
	ctx := context.Background()

	chat, err := client.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model: "synthetic",
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: pr.System},
			{Role: openai.ChatMessageRoleUser, Content: pr.User},
		},
		//lint:ignore SA1019 the server must accept max_tokens, which most clients send.
		N: 3, MaxTokens: 1, LogProbs: true, TopLogProbs: 7, Seed: new(int),
	})
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	if len(chat.Choices) != 3 || chat.Choices[0].LogProbs == nil || len(chat.Choices[0].LogProbs.Content[0].TopLogProbs) != 7 {
		t.Errorf("chat: got %+v, want 3 choices with 7 top log-probabilities", chat.Choices)
	}

	comp, err := client.CreateCompletion(ctx, openai.CompletionRequest{
		Model:  "synthetic",
		Prompt: pr.System + "\n\n" + pr.User,
		N:      2, MaxTokens: 5, LogProbs: 6,
	})
	if err != nil {
		t.Fatalf("completion: %v", err)
	}
	if len(comp.Choices) != 2 || len(comp.Choices[0].LogProbs.Tokens) == 0 {
		t.Errorf("completion: got %+v, want 2 choices with tokens", comp.Choices)
	}
	for _, c := range comp.Choices {
		if _, ok := srvTestParse(c.Text, pvq.Scale); !ok {
			t.Errorf("completion text %q does not parse", c.Text)
		}
	}
}

func TestServerRateLimitThroughGoOpenAI(t *testing.T) {
	_, ts := srvTestServer(t, Options{ErrorRate: 1})
	cfg := openai.DefaultConfig("unused")
	cfg.BaseURL = ts.URL + "/v1"
	client := openai.NewClientWithConfig(cfg)
	seen := map[int]bool{}
	for range 20 {
		_, err := client.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
			Model:    "synthetic",
			Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "hello"}},
		})
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) {
			t.Fatalf("error: got %v, want an *openai.APIError", err)
		}
		seen[apiErr.HTTPStatusCode] = true
	}
	if !seen[429] || !seen[500] || len(seen) != 2 {
		t.Errorf("statuses: got %v, want 429 and 500", seen)
	}
}
