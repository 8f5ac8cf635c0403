package llmbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/llm"
)

// The bare client is the ceiling the society client is measured against:
// net/http with keep-alive connections, concurrency workers taking the
// phase's calls in turn, each encoding its request body, posting it,
// reading the reply and decoding the part it needs, with nothing else
// (no agents, parsing, retries, adaptive limit or cache). It makes the
// same calls as the society client: the same prompts (agent.Render), the
// same number of each, the same token limit and log-probabilities.

type bareMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type bareRequest struct {
	Model       string        `json:"model"`
	Messages    []bareMessage `json:"messages"`
	MaxTokens   int           `json:"max_tokens"`
	Logprobs    bool          `json:"logprobs,omitempty"`
	TopLogprobs int           `json:"top_logprobs,omitempty"`
}

type bareReply struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Logprobs *struct {
			Content []struct {
				TopLogprobs []struct {
					Token   string  `json:"token"`
					Logprob float64 `json:"logprob"`
				} `json:"top_logprobs"`
			} `json:"content"`
		} `json:"logprobs"`
	} `json:"choices"`
}

// Request shapes of the society client (llm.DefaultMaxTokens per sampled
// completion; one token with 20 alternatives for a distribution).
const (
	bareDistTokens   = 1
	bareTopLogprobs  = 20
	bareTimeout      = 30 * time.Second
	bareMaxBodyBytes = 1 << 20
)

// bare makes the phase's calls with the bare client: in sample mode one
// per agent and item, in distribution mode one per distinct persona and
// item.
func (ph phase) bare(ctx context.Context, url string) (Run, error) {
	qs := ph.questions()
	msgs := make([][]bareMessage, len(qs))
	for i, q := range qs {
		p := agent.Render(q)
		if p.System != "" {
			msgs[i] = append(msgs[i], bareMessage{Role: "system", Content: p.System})
		}
		msgs[i] = append(msgs[i], bareMessage{Role: "user", Content: p.User})
	}
	// calls[k] is the question of call k: each persona's questions as
	// many times as the persona has agents in sample mode, once in
	// distribution mode.
	d := ph.demand()
	var calls []int32
	for i, q := range qs {
		n := 1
		if ph.mode == llm.ModeSample {
			n = d[q.Persona.Value]
		}
		for range n {
			calls = append(calls, int32(i))
		}
	}
	tr := &http.Transport{MaxIdleConns: ph.concurrency, MaxIdleConnsPerHost: ph.concurrency, IdleConnTimeout: 90 * time.Second}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: bareTimeout}
	endpoint := url + "/chat/completions"
	dist := ph.mode == llm.ModeDistribution

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next, done atomic.Int64
		mu         sync.Mutex
		firstErr   error
		wg         sync.WaitGroup
	)
	m := startMeter(done.Load)
	for range min(ph.concurrency, len(calls)) {
		wg.Go(func() {
			var body, reply bytes.Buffer
			for {
				k := int(next.Add(1)) - 1
				if k >= len(calls) || ctx.Err() != nil {
					return
				}
				req := bareRequest{Model: llm.SyntheticName, Messages: msgs[calls[k]], MaxTokens: llm.DefaultMaxTokens}
				if dist {
					req.MaxTokens, req.Logprobs, req.TopLogprobs = bareDistTokens, true, bareTopLogprobs
				}
				if err := bareCall(ctx, hc, endpoint, &req, &body, &reply, dist); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("bare client, call %d: %w", k, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	el, cpu, samples := m.end()
	if firstErr != nil {
		return Run{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return Run{}, err
	}
	return timedRun("bare", done.Load(), el, cpu, samples, 0), nil
}

// bareCall posts one request and checks that its reply holds what the
// mode needs (a text, or the first token's alternatives). body and reply
// are the worker's buffers, reused from call to call.
func bareCall(ctx context.Context, hc *http.Client, endpoint string, req *bareRequest, body, reply *bytes.Buffer, dist bool) error {
	body.Reset()
	if err := json.NewEncoder(body).Encode(req); err != nil {
		return err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body.Bytes()))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hr)
	if err != nil {
		return err
	}
	reply.Reset()
	_, err = reply.ReadFrom(io.LimitReader(resp.Body, bareMaxBodyBytes))
	resp.Body.Close()
	if err != nil {
		return err
	}
	buf := reply.Bytes()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(buf))
	}
	var r bareReply
	if err := json.Unmarshal(buf, &r); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	switch {
	case len(r.Choices) == 0:
		return fmt.Errorf("reply without choices: %s", buf)
	case dist && (r.Choices[0].Logprobs == nil || len(r.Choices[0].Logprobs.Content) == 0 || len(r.Choices[0].Logprobs.Content[0].TopLogprobs) == 0):
		return fmt.Errorf("reply without alternatives: %s", buf)
	case !dist && r.Choices[0].Message.Content == "":
		return fmt.Errorf("reply without text: %s", buf)
	}
	return nil
}
