package bus_test

import (
	"context"
	"strings"
	"testing"

	"github.com/society-sim/society/bus"
)

// flights is the model cache's flights port (llm.Flights), restated so
// that the test checks the method set without bus depending on llm.
type flights interface {
	Claim(ctx context.Context, key string) (val []byte, landed, won bool, rev uint64, err error)
	Beat(ctx context.Context, key string, rev uint64) (uint64, error)
	Steal(ctx context.Context, key string, rev uint64) (bool, uint64, error)
	Land(ctx context.Context, key string, val []byte) error
	Drop(ctx context.Context, key string) error
	Landed(ctx context.Context, key string) ([]byte, bool, error)
}

var _ flights = (*bus.Flights)(nil)

// TestFlights: of two hosts claiming a key, one wins; the other sees the
// claim, cannot take it over while its holder renews it, takes it over
// once the holder stops (a killed host), and reads the value landed; a
// dropped claim can be won again; a resumed run starts without claims.
func TestFlights(t *testing.T) {
	ctx := t.Context()
	js := newJetStream(t, bus.ServerOptions{})
	s := bus.Subjects{Run: "flights-1"}
	a, b := bus.OpenFlights(ctx, js, s, nil), bus.OpenFlights(ctx, js, s, nil)
	key := strings.Repeat("0123456789abcdef", 4)

	_, landed, won, rev, err := a.Claim(ctx, key)
	if err != nil || landed || !won {
		t.Fatalf("first claim: got landed %v, won %v, err %v; want won", landed, won, err)
	}
	_, landed, won, seen, err := b.Claim(ctx, key)
	if err != nil || landed || won || seen != rev {
		t.Fatalf("second claim: got landed %v, won %v, rev %d, err %v; want the first's claim at rev %d", landed, won, seen, err, rev)
	}
	// The holder renews its claim: the claim seen before is no longer
	// there to take over.
	rev, err = a.Beat(ctx, key, rev)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := b.Steal(ctx, key, seen); err != nil || ok {
		t.Fatalf("take-over of a renewed claim: got %v, %v; want refused", ok, err)
	}
	// The holder stops renewing (killed): the claim at its last rev is
	// taken over, once, and the old holder's renewal fails.
	ok, _, err := b.Steal(ctx, key, rev)
	if err != nil || !ok {
		t.Fatalf("take-over of a stale claim: got %v, %v; want taken", ok, err)
	}
	if ok, _, _ := a.Steal(ctx, key, rev); ok {
		t.Error("a claim was taken over twice at the same rev")
	}
	if _, err := a.Beat(ctx, key, rev); err == nil {
		t.Error("the old holder renewed a claim taken over")
	}
	if _, ok, err := a.Landed(ctx, key); err != nil || ok {
		t.Errorf("Landed before landing: got %v, %v; want false", ok, err)
	}
	if err := b.Land(ctx, key, []byte(`{"dist":[1]}`)); err != nil {
		t.Fatal(err)
	}
	v, landed, won, _, err := a.Claim(ctx, key)
	if err != nil || !landed || won || string(v) != `{"dist":[1]}` {
		t.Fatalf("claim of a landed key: got %q, landed %v, won %v, err %v; want the value", v, landed, won, err)
	}
	if v, ok, err := a.Landed(ctx, key); err != nil || !ok || string(v) != `{"dist":[1]}` {
		t.Errorf("Landed: got %q, %v, %v; want the value", v, ok, err)
	}

	// A failed fetch drops its claim: the next claimer wins.
	other := strings.Repeat("f", 64)
	if _, _, won, _, _ := a.Claim(ctx, other); !won {
		t.Fatal("claim of a new key lost")
	}
	if err := a.Drop(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, _, won, _, err := b.Claim(ctx, other); err != nil || !won {
		t.Fatalf("claim of a dropped key: got won %v, err %v; want won", won, err)
	}

	// A resumed run's claims start afresh.
	if err := bus.PurgeTasks(ctx, js, s); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Landed(ctx, key); ok {
		t.Error("a landed value outlived the purge of the run's tasks")
	}
	if err := bus.DeleteRunStreams(ctx, js, s); err != nil {
		t.Fatal(err)
	}
	// Without the bucket, claims fail (the host then fetches itself).
	if _, _, _, _, err := a.Claim(ctx, key); err == nil {
		t.Error("claim in a deleted bucket succeeded")
	}
}
