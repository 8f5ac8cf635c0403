package llm

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCacheReadCreatesNothing: read mode over a directory that does not
// exist creates neither it nor the file, and reads as empty; over a
// filled cache it reads the stored replies and leaves the file as it was,
// while the replies it fetches serve the run from memory.
func TestCacheReadCreatesNothing(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "new")
	c, err := OpenCache(dir, CacheRead, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Get(ctx, keyHash("a")); ok || err != nil {
		t.Errorf("Get on a missing cache: got %v, %v; want a miss", ok, err)
	}
	if err := c.Put(ctx, keyHash("a"), []byte("fetched")); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := c.Get(ctx, keyHash("a")); !ok || string(v) != "fetched" {
		t.Errorf("Get after Put: got %q, %v; want the run's reply", v, ok)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("read mode on a new directory: got %v, want nothing created", err)
	}

	// A filled cache.
	rw, err := OpenCache(dir, CacheReadWrite, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Put(ctx, keyHash("a"), []byte("stored")); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1_000_000_000, 0)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	r1, err := OpenCache(dir, CacheRead, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := r1.Get(ctx, keyHash("a")); !ok || err != nil || string(v) != "stored" {
		t.Errorf("Get: got %q, %v, %v; want the stored reply", v, ok, err)
	}
	if err := r1.Put(ctx, keyHash("b"), []byte("fetched")); err != nil {
		t.Fatal(err)
	}
	// A writer in the same process cannot take the file from the reader.
	if _, err := OpenFileStore(dir, FileStoreOptions{}); err == nil {
		t.Error("OpenFileStore for writing while the file is open read-only: got no error")
	}
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) || !fi.ModTime().Equal(old) {
		t.Errorf("read mode changed the file (modified %v, want %v)", fi.ModTime(), old)
	}
	fs, err := OpenFileStore(dir, FileStoreOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if _, ok, _ := fs.Get(ctx, keyHash("b")); ok {
		t.Error("a reply fetched in read mode was written to the file")
	}
	if err := fs.Put(ctx, keyHash("b"), []byte("x")); err == nil {
		t.Error("Put on a read-only store: got no error")
	}
}
