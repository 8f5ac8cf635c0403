package modelserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Grace is how long in-flight requests may finish, once Serve's context is
// done, before their connections are closed.
const Grace = 5 * time.Second

// Serve serves s on ln until ctx is done, then stops intake and lets the
// requests in service finish. Hung and queued requests wait on their
// clients, so after Grace their connections are closed, which ends them.
// It closes ln. An error is the server's failing before ctx was done.
func Serve(ctx context.Context, ln net.Listener, s *Server) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), Grace)
	err := srv.Shutdown(sctx)
	cancel()
	if err != nil {
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}
