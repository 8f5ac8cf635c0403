package bus_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/society-sim/society/bus"
)

// store is the model cache's store port, restated here so that the test
// checks the method set without bus depending on llm.
type store interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Put(ctx context.Context, key string, val []byte) error
}

var _ store = (*bus.KVStore)(nil)

func newJetStream(t *testing.T, o bus.ServerOptions) jetstream.JetStream {
	t.Helper()
	srv, err := bus.StartServer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestKVStore(t *testing.T) {
	ctx := context.Background()
	js := newJetStream(t, bus.ServerOptions{})
	s, err := bus.NewKVStore(ctx, js, "society-cache", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.Repeat("0123456789abcdef", 4) // a SHA-256 in hex
	if v, ok, err := s.Get(ctx, key); err != nil || ok || v != nil {
		t.Fatalf("Get of a missing key: got %q, %v, %v; want nil, false, nil", v, ok, err)
	}
	if err := s.Put(ctx, key, []byte(`{"value":3,"valid":true}`)); err != nil {
		t.Fatal(err)
	}
	v, ok, err := s.Get(ctx, key)
	if err != nil || !ok || string(v) != `{"value":3,"valid":true}` {
		t.Fatalf("Get: got %q, %v, %v; want the stored value", v, ok, err)
	}

	// A second host opening the same bucket sees the value.
	s2, err := bus.NewKVStore(ctx, js, "society-cache", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s2.Get(ctx, key); err != nil || !ok {
		t.Errorf("Get from a second store on the bucket: got %v, %v; want the value", ok, err)
	}

	for _, bad := range []string{"", "a b", "a*", "../x"} {
		if err := s.Put(ctx, bad, []byte("v")); err == nil {
			t.Errorf("Put(%q): got no error, want the key rejected", bad)
		}
	}
	cfg, err := js.KeyValue(ctx, "society-cache")
	if err != nil {
		t.Fatal(err)
	}
	st, err := cfg.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
	if info.Config.Storage != jetstream.FileStorage || info.Config.MaxBytes != 1<<20 {
		t.Errorf("bucket: got storage %v and max bytes %d, want file storage and %d", info.Config.Storage, info.Config.MaxBytes, 1<<20)
	}
}

func TestKVStoreFull(t *testing.T) {
	ctx := context.Background()
	js := newJetStream(t, bus.ServerOptions{})
	s, err := bus.NewKVStore(ctx, js, "small", 4096)
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 1024)
	var failed bool
	for i := range 16 {
		if err := s.Put(ctx, strings.Repeat(string(rune('a'+i)), 64), val); err != nil {
			failed = true
			break
		}
	}
	if !failed {
		t.Error("got 16 KiB into a 4 KiB bucket, want a Put to fail")
	}
	if _, err := bus.NewKVStore(ctx, js, "nolimit", 0); err == nil {
		t.Error("got a bucket without a size limit, want an error")
	}
}

// Each lists every key of the bucket with its value, and nothing in an
// empty bucket.
func TestKVStoreEach(t *testing.T) {
	ctx := bus.BoundedContext(t)
	js := newJetStream(t, bus.ServerOptions{})
	s, err := bus.NewKVStore(ctx, js, "each", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	each := func(key string, val []byte) error {
		got[key] = string(val)
		return nil
	}
	if err := s.Each(ctx, each); err != nil || len(got) != 0 {
		t.Fatalf("empty bucket: got %v (error %v), want nothing", got, err)
	}
	want := map[string]string{"a1": "one", "b2": "two", "c3": "three"}
	for k, v := range want {
		if err := s.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	// A key written again gives its last value; a deleted one is passed
	// over.
	if err := s.Put(ctx, "gone", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "b2", []byte("two")); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "each")
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Each(ctx, each); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("key %s: got %q, want %q", k, got[k], v)
		}
	}
}
