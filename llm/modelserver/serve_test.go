package modelserver

import (
	"context"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestServeFinishesRequestsInService: once Serve's context is done, a
// request the server is answering still gets its answer, and Serve
// returns nil after it.
func TestServeFinishesRequestsInService(t *testing.T) {
	s := New(srvTestSynthetic(t), Options{Seed: 1, Latency: 300 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, s) }()

	body := `{"model": "m", "messages": [{"role": "user", "content": "How much do you like tea? Answer with a single number from 1 to 5."}]}`
	status := make(chan int, 1)
	go func() {
		resp, err := http.Post("http://"+ln.Addr().String()+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Errorf("request in service: %v", err)
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	// Until the request is in service (an event the server counts, not a
	// length of time).
	for s.Stats().MaxInFlight != 1 {
		if t.Context().Err() != nil {
			t.Fatal("the request never reached the server")
		}
		runtime.Gosched()
	}
	cancel()
	if got := <-status; got != http.StatusOK {
		t.Errorf("request in service at shutdown: got status %d, want 200", got)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: got %v, want nil", err)
	}
	if st := s.Stats(); st.Served != 1 {
		t.Errorf("served: got %d, want 1", st.Served)
	}
}

// TestServeClosedListener: a listener that cannot serve is Serve's error,
// named by its address, without waiting for the context.
func TestServeClosedListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = Serve(t.Context(), ln, New(srvTestSynthetic(t), Options{}))
	if err == nil || !strings.HasPrefix(err.Error(), "serve "+ln.Addr().String()+": ") {
		t.Errorf("got %v, want an error naming serve %s", err, ln.Addr())
	}
}
