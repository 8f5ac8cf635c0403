package llm

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// TestFileStoreFreshLookups: in a store that was empty when opened, a Get
// of a key never put is answered without a read transaction, and every
// key put is found (by the same store and by another of the same
// directory); once reopened with replies in it, every Get reads the file.
func TestFileStoreFreshLookups(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	putAll(t, s, n, entry)
	other, err := OpenFileStore(dir, FileStoreOptions{}) // shares the open file
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		for _, st := range []*FileStore{s, other} {
			v, ok, err := st.Get(ctx, keyHash(fmt.Sprint(i)))
			if err != nil || !ok || !bytes.Equal(v, entry(i)) {
				t.Fatalf("key %d: %q, %v, %v", i, v, ok, err)
			}
		}
	}
	reads := s.db.db.Stats().TxN
	for i := n; i < 2*n; i++ {
		if _, ok, err := s.Get(ctx, keyHash(fmt.Sprint(i))); ok || err != nil {
			t.Fatalf("key %d never put: found %v, %v", i, ok, err)
		}
	}
	// A false positive reads the file; 500 keys in 2^24 bits make one
	// unlikely, and a few would still show the lookups skipped.
	if got := s.db.db.Stats().TxN - reads; got > 5 {
		t.Errorf("%d read transactions for %d keys never put, want none", got, n)
	}
	other.Close()
	s.Close()

	s, err = OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.db.fresh {
		t.Fatal("a store with replies opened as fresh")
	}
	reads = s.db.db.Stats().TxN
	for i := range 2 * n {
		v, ok, err := s.Get(ctx, keyHash(fmt.Sprint(i)))
		if err != nil || ok != (i < n) || ok && !bytes.Equal(v, entry(i)) {
			t.Fatalf("reopened, key %d: %q, %v, %v", i, v, ok, err)
		}
	}
	if got := s.db.db.Stats().TxN - reads; got != 2*n {
		t.Errorf("reopened: %d read transactions for %d Gets", got, 2*n)
	}
}
