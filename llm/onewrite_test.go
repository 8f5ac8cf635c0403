package llm

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/society-sim/society/values"
)

// writeCounter is a connection counting its writes.
type writeCounter struct {
	net.Conn
	writes *atomic.Int64
}

func (w writeCounter) Write(p []byte) (int, error) {
	w.writes.Add(1)
	return w.Conn.Write(p)
}

// TestRequestOneWrite checks that a sample-mode request goes out in one
// write of its connection, headers and body together: net/http flushes
// the headers on their own, one system call more per call, when it cannot
// tell that the body is in memory.
func TestRequestOneWrite(t *testing.T) {
	srv := instantServer(t)
	c := newClient(t, testConfig(srv.URL))
	var writes atomic.Int64
	dial := c.tr.DialContext
	c.tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return writeCounter{conn, &writes}, nil
	}
	in := pvq(t)
	const calls = 5
	for i := range calls {
		if _, err := c.Ask(context.Background(), question(in, values.Power, i, i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := writes.Load(); n != calls {
		t.Errorf("%d writes for %d requests, want one each", n, calls)
	}
}
