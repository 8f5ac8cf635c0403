package bus

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestOpenRegistryWait(t *testing.T) {
	srv, err := StartServer(ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("join-test")
	if err != nil {
		t.Fatal(err)
	}
	defer Drain(nc)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := OpenRegistryWait(boundedContext(t), js, nil)
	if err != nil || reg == nil {
		t.Fatalf("got %v, %v, want the registry", reg, err)
	}
	ctx, cancel := context.WithCancel(boundedContext(t))
	cancel()
	if reg, err := OpenRegistryWait(ctx, js, nil); reg != nil || err != nil {
		t.Errorf("ended context: got %v, %v, want nil, nil", reg, err)
	}
}
