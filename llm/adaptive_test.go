package llm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/society-sim/society/values"
)

// pipeListener is a net.Listener whose connections are in-memory pipes:
// a real http.Server and the client's real transport talk through it
// inside a synctest bubble, where the server's processing time and the
// client's timeouts run on the bubble's clock.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	// refuse, when it returns true, makes a dial fail as a connection
	// to a port where nothing listens does.
	refuse func() bool
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	if l.refuse != nil && l.refuse() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// slotServer is a model server with a fixed number of slots and a fixed
// time per request, that finishes every request it took even when the
// client has given up on it, as inference servers do that cannot see a
// closed connection. Its time per request is the server's latency on the
// synctest clock: serve it only inside a bubble.
type slotServer struct {
	slots    chan struct{}
	per      time.Duration
	requests atomic.Int64
}

func (s *slotServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	io.Copy(io.Discard, r.Body)
	s.slots <- struct{}{}
	time.Sleep(s.per)
	<-s.slots
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": "x", "object": "chat.completion", "model": "m",
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": "4"}}},
		"usage": usage(1)})
}

// TestClientBacksOffOnSlowServer runs a sample-mode batch against servers
// slower than the client can ask: the client lowers its concurrency
// instead of piling abandoned requests onto the server, so that requests
// stay within twice the answers and every question is answered.
func TestClientBacksOffOnSlowServer(t *testing.T) {
	tests := []struct {
		name        string
		slots       int
		per         time.Duration
		concurrency int
		timeout     time.Duration
	}{
		// Slower than the client's timeout at full concurrency, and it
		// keeps working on what the client abandoned.
		{"slow", 2, 1500 * time.Millisecond, 8, 2 * time.Second},
		// Saturated: one slot; eight at once wait longer than the timeout.
		{"saturated", 1, time.Second, 8, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := &slotServer{slots: make(chan struct{}, tt.slots), per: tt.per}
				l := newPipeListener()
				hs := &http.Server{Handler: srv}
				go hs.Serve(l)
				defer func() {
					l.Close()
					hs.Close()
				}()
				cfg := ClientConfig{Name: "slow", BaseURL: "http://127.0.0.1:8000/v1", Model: "m",
					Concurrency: tt.concurrency, Timeout: tt.timeout, Temperature: ptr(1.0)}
				c, err := NewClient(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.tr.DialContext = l.dial

				in := pvq(t)
				const questions = 40
				start := time.Now()
				var wg sync.WaitGroup
				var answers atomic.Int64
				errs := make([]error, questions)
				for i := range questions {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r, err := c.Ask(context.Background(), question(in, values.Achievement, i%len(in.Items), i))
						errs[i] = err
						if err == nil && r.Answer.Valid {
							answers.Add(1)
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				if err := errors.Join(errs...); err != nil && !strings.Contains(err.Error(), "timed out") {
					t.Fatalf("got %v, want every question answered or a failure naming the timeouts", err)
				}
				got, req := answers.Load(), srv.requests.Load()
				t.Logf("%d answers, %d requests (%.2f per answer), %v on the test clock, limit at the end %d",
					got, req, float64(req)/float64(got), elapsed, c.doer.limit.current())
				if got != questions {
					t.Errorf("got %d answers, want %d (a slow server makes a run slower, never failed)", got, questions)
				}
				if req > 2*got {
					t.Errorf("server got %d requests for %d answers, want at most twice as many", req, got)
				}
			})
		})
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(8)
	ctx := context.Background()
	var epochs []uint64
	for range 8 {
		e, err := l.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		epochs = append(epochs, e)
	}
	// Eight requests of one epoch time out: one halving, not three.
	for _, e := range epochs[:6] {
		l.release(e, outcomeOverload)
	}
	if got := l.current(); got != 4 {
		t.Fatalf("after a burst of timeouts: limit %d, want 4", got)
	}
	// A request sent after the halving that also times out halves again.
	e, _ := l.acquire(ctx)
	l.release(e, outcomeOverload)
	if got := l.current(); got != 2 {
		t.Fatalf("after a later timeout: limit %d, want 2", got)
	}
	// A limit's worth of successes adds one; slow successes add nothing.
	for _, e := range epochs[6:] {
		l.release(e, outcomeSuccess)
	}
	e, _ = l.acquire(ctx)
	l.release(e, outcomeSuccess)
	if got := l.current(); got != 3 {
		t.Fatalf("after three successes at limit 2: limit %d, want 3", got)
	}
	for range 10 {
		e, _ := l.acquire(ctx)
		l.release(e, outcomeSlow)
	}
	if got := l.current(); got != 3 {
		t.Fatalf("after slow successes: limit %d, want 3", got)
	}
	for range 100 {
		e, _ := l.acquire(ctx)
		l.release(e, outcomeSuccess)
	}
	if got := l.current(); got != 8 {
		t.Fatalf("limit %d, want the ceiling 8", got)
	}
	// Never below one.
	for range 5 {
		e, _ := l.acquire(ctx)
		l.release(e, outcomeOverload)
	}
	if got := l.current(); got != 1 {
		t.Fatalf("limit %d, want the floor 1", got)
	}
	// A full limiter makes the caller wait until its context ends.
	e, _ = l.acquire(ctx)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.acquire(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled while full", err)
	}
	l.release(e, outcomeNeutral)
}

// serveOnPipe starts handler behind a pipeListener and a client of it, in
// the calling synctest bubble; stop closes them, before the bubble ends.
func serveOnPipe(t *testing.T, h http.Handler, cfg ClientConfig) (c *Client, l *pipeListener, stop func()) {
	t.Helper()
	l = newPipeListener()
	hs := &http.Server{Handler: h}
	go hs.Serve(l)
	cfg.Name, cfg.BaseURL, cfg.Model = "pipe", "http://127.0.0.1:8000/v1", "m"
	cfg.Temperature = ptr(1.0)
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.tr.DialContext = l.dial
	return c, l, func() {
		c.Close()
		l.Close()
		hs.Close()
	}
}

// TestClientGivesUpOnHungServer runs a batch against a server that
// never answers: every question fails within a minute of the test clock,
// saying that requests timed out, instead of queueing for hours.
func TestClientGivesUpOnHungServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hung := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // then a closed connection ends the request's context
			<-r.Context().Done()
		})
		c, _, stop := serveOnPipe(t, hung, ClientConfig{Concurrency: 8, Timeout: 2 * time.Second})
		defer stop()
		in := pvq(t)
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, 40)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = c.Ask(context.Background(), question(in, values.Power, i%len(in.Items), i))
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		for i, err := range errs {
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "timed out after 2s") {
				t.Fatalf("question %d: got %v, want ErrUnavailable naming the timeout", i, err)
			}
		}
		t.Logf("every question failed after %v on the test clock: %v", elapsed, errs[0])
		if elapsed > time.Minute {
			t.Errorf("questions failed after %v, want within a minute", elapsed)
		}
	})
}

// TestClientWaitsForRestartingServer checks the other side: a server that
// answered, then refuses connections for a while (restarting), is waited
// for, and the run goes on.
func TestClientWaitsForRestartingServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &slotServer{slots: make(chan struct{}, 4), per: 100 * time.Millisecond}
		var refusing atomic.Bool
		c, l, stop := serveOnPipe(t, srv, ClientConfig{Concurrency: 4, Timeout: 2 * time.Second})
		defer stop()
		l.refuse = refusing.Load
		in := pvq(t)
		if _, err := c.Ask(context.Background(), question(in, values.Power, 0, 0)); err != nil {
			t.Fatal(err)
		}
		c.Close() // no idle connection survives a restart
		refusing.Store(true)
		// The restart ends on the bubble's clock, just short of the
		// outage that would end the run.
		time.AfterFunc(minOutage-5*time.Second, func() { refusing.Store(false) })
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = c.Ask(context.Background(), question(in, values.Power, 1+i%5, i))
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("got %v, want every question answered after the restart", err)
		}
	})
}

// TestClientRidesOutRateLimitWindow runs against a server that answers
// 429 to everything for a minute, as a hosted API does once a per-minute
// limit is spent: the run waits it out and every question is answered.
func TestClientRidesOutRateLimitWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var limited, served atomic.Int64
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			if time.Since(start) < time.Minute {
				limited.Add(1)
				w.Header().Set("Retry-After", "5")
				w.WriteHeader(http.StatusTooManyRequests)
				io.WriteString(w, `{"error":{"message":"Rate limit reached for requests per min (RPM): Limit 60, Used 60.","type":"requests","code":"rate_limit_exceeded"}}`)
				return
			}
			served.Add(1)
			json.NewEncoder(w).Encode(map[string]any{"id": "x", "object": "chat.completion", "model": "m",
				"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
					"message": map[string]any{"role": "assistant", "content": "4"}}},
				"usage": usage(1)})
		})
		c, _, stop := serveOnPipe(t, h, ClientConfig{Concurrency: 8, Timeout: 10 * time.Second, MaxRetries: 20})
		defer stop()
		in := pvq(t)
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = c.Ask(context.Background(), question(in, values.Benevolence, i%len(in.Items), i))
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("got %v, want every question answered once the window passed", err)
		}
		t.Logf("%d refusals, %d answers, done after %v on the test clock", limited.Load(), served.Load(), time.Since(start))
	})
}

// A freed slot goes to the first waiter alone, in the order they came
// (a broadcast would wake them all to race for it), and a waiter whose
// context ends leaves the queue.
func TestLimiterHandsSlotsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter(1)
		held, err := l.acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		type grant struct {
			waiter int
			epoch  uint64
		}
		got := make(chan grant, 3)
		cancels := make([]context.CancelFunc, 3)
		for i := range 3 {
			ctx, cancel := context.WithCancel(context.Background())
			cancels[i] = cancel
			go func() {
				if e, err := l.acquire(ctx); err == nil {
					got <- grant{i, e}
				}
			}()
			synctest.Wait() // waiter i is queued before the next comes
		}
		cancels[1]()
		synctest.Wait()
		for _, want := range []int{0, 2} {
			l.release(held, outcomeNeutral)
			synctest.Wait()
			if n := len(got); n != 1 {
				t.Fatalf("after one release %d waiters got a slot, want one (waiter %d)", n, want)
			}
			g := <-got
			if g.waiter != want {
				t.Fatalf("waiter %d got the slot, want waiter %d", g.waiter, want)
			}
			held = g.epoch
		}
		l.mu.Lock()
		queued := len(l.waiters)
		l.mu.Unlock()
		if queued != 0 {
			t.Errorf("got %d waiters queued, want none (waiter 1 gave up)", queued)
		}
		l.release(held, outcomeNeutral)
		for _, cancel := range cancels {
			cancel()
		}
	})
}
