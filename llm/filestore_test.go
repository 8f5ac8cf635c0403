package llm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func mustFileStore(t *testing.T) *FileStore {
	t.Helper()
	s, err := OpenFileStore(t.TempDir(), FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// putAll stores value(i) under key(i) for i in [0, n) from n goroutines,
// as a run's requests in flight do (Puts of one moment share a commit).
func putAll(t *testing.T, s Store, n int, value func(int) []byte) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := s.Put(context.Background(), keyHash(fmt.Sprint(i)), value(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func entry(i int) []byte {
	return fmt.Appendf(nil, `{"value":%d,"valid":true,"raw":"%d"}`, i%6+1, i%6+1)
}

func TestFileStoreOneFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	putAll(t, s, n, entry)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, keyHash("0")); err == nil {
		t.Error("Get on a closed store: got no error")
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 || files[0].Name() != FileName {
		t.Errorf("got %d files in the cache directory (%v), want only %s", len(files), files, FileName)
	}
	// Reopened (a later run), every value is there.
	s, err = OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Len(); got != n || err != nil {
		t.Errorf("Len: got %d, %v; want %d", got, err, n)
	}
	for i := range n {
		v, ok, err := s.Get(ctx, keyHash(fmt.Sprint(i)))
		if err != nil || !ok || !bytes.Equal(v, entry(i)) {
			t.Fatalf("entry %d after reopening: got %q, %v, %v; want %s", i, v, ok, err, entry(i))
		}
	}
}

func TestFileStoreKeys(t *testing.T) {
	ctx := context.Background()
	s := mustFileStore(t)
	for _, bad := range []string{"", "a", "abc", "../../etc/passwd", "ab/cd", "ab\x00c", "ABCD", "zz"} {
		if err := s.Put(ctx, bad, []byte("v")); err == nil {
			t.Errorf("Put(%q): got no error, want the key rejected", bad)
		}
		if _, _, err := s.Get(ctx, bad); err == nil {
			t.Errorf("Get(%q): got no error, want the key rejected", bad)
		}
	}
}

// record is the stored bytes of key, as the file holds them.
func record(t *testing.T, s *FileStore, key string) []byte {
	t.Helper()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	var rec []byte
	err := s.db.db.View(func(tx *bolt.Tx) error {
		k, _ := binaryKey(key)
		rec = bytes.Clone(tx.Bucket(repliesBucket).Get(k))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestFileStoreCompression(t *testing.T) {
	ctx := context.Background()
	s := mustFileStore(t)
	// A reasoning model's raw reply: long, and repetitive as prose is.
	long := []byte(`{"value":5,"valid":true,"raw":"` + strings.Repeat("Considering the person described, who values tradition and family. ", 60) + `5"}`)
	for _, tc := range []struct {
		name string
		val  []byte
		kind byte
	}{{"short", entry(3), recordRaw}, {"long", long, recordDeflate}} {
		key := keyHash(tc.name)
		if err := s.Put(ctx, key, tc.val); err != nil {
			t.Fatal(err)
		}
		rec := record(t, s, key)
		if rec[0] != tc.kind {
			t.Errorf("%s: got record kind %d, want %d", tc.name, rec[0], tc.kind)
		}
		if tc.kind == recordDeflate && len(rec) > len(tc.val)/4 {
			t.Errorf("%s: got %d bytes stored for %d, want under a quarter", tc.name, len(rec), len(tc.val))
		}
		if v, ok, err := s.Get(ctx, key); err != nil || !ok || !bytes.Equal(v, tc.val) {
			t.Errorf("%s: got %q, %v, %v; want the value back", tc.name, v, ok, err)
		}
	}
}

// A value damaged on disk is never returned: it reads as missing, and the
// cache fetches it again and stores it whole.
func TestFileStoreCorruptValue(t *testing.T) {
	ctx := context.Background()
	s := mustFileStore(t)
	key := keyHash("q")
	if err := s.Put(ctx, key, []byte(`{"value":4,"valid":true,"raw":"4"}`)); err != nil {
		t.Fatal(err)
	}
	rec := record(t, s, key)
	rec[len(rec)-5] ^= 0x01 // "4" becomes "5": valid JSON, wrong answer
	if err := s.db.db.Update(func(tx *bolt.Tx) error {
		k, _ := binaryKey(key)
		return tx.Bucket(repliesBucket).Put(k, rec)
	}); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(ctx, key); err != nil || ok {
		t.Fatalf("damaged value: got %q, %v, %v; want it missing", v, ok, err)
	}
	if s.Corrupt() != 1 {
		t.Errorf("got %d corrupt values counted, want 1", s.Corrupt())
	}
	c := NewCache(s)
	v, hit, err := c.Do(ctx, key, nil, func(context.Context) ([]byte, error) { return []byte(`{"value":4,"valid":true,"raw":"4"}`), nil })
	if err != nil || hit || !strings.Contains(string(v), `"raw":"4"`) {
		t.Fatalf("Do: got %q, hit %v, %v; want a fresh fetch", v, hit, err)
	}
	if v, ok, _ := s.Get(ctx, key); !ok || !strings.Contains(string(v), `"raw":"4"`) {
		t.Errorf("after the fetch: got %q, %v; want the value stored whole again", v, ok)
	}
}

// A file damaged as a whole is refused with an error naming it; an empty
// one (created, never committed) is a fresh cache.
func TestFileStoreBadFile(t *testing.T) {
	ctx := context.Background()
	filled := func(t *testing.T) string {
		dir := t.TempDir()
		s, err := OpenFileStore(dir, FileStoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		putAll(t, s, 500, entry)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tc := range []struct {
		name, want string
		damage     func(path string) error
	}{
		{"truncated", "truncated", func(p string) error {
			// Half of what the header says is in use: half of the
			// file's length can leave every page in use (the file
			// grows ahead of them, by how much depends on the commits).
			used, err := usedLength(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, used/2)
		}},
		{"not a database", "invalid", func(p string) error {
			return os.WriteFile(p, bytes.Repeat([]byte("society\n"), 4096), 0o644)
		}},
		{"empty", "", func(p string) error { return os.Truncate(p, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filled(t)
			path := filepath.Join(dir, FileName)
			if err := tc.damage(path); err != nil {
				t.Fatal(err)
			}
			s, err := OpenFileStore(dir, FileStoreOptions{})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want a fresh cache", err)
				}
				defer s.Close()
				if _, ok, err := s.Get(ctx, keyHash("1")); ok || err != nil {
					t.Errorf("fresh cache: got %v, %v; want a miss", ok, err)
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("got the file opened, want an error")
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "remove the file") {
				t.Errorf("got %q, want the file, %q and what to do", msg, tc.want)
			}
		})
	}
}

// A commit torn by a crash (its header page half written) leaves the file
// as it was before that commit: the values of earlier commits, and not
// the value of the torn one.
func TestFileStoreTornCommit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first, second := keyHash("first"), keyHash("second")
	if err := s.Put(ctx, first, []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil { // its own commit
		t.Fatal(err)
	}
	if err := s.Put(ctx, second, []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The last commit's header is the meta page (0 or 1) of the higher
	// transaction id: tear it by zeroing its second half.
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	txid := func(p int) uint64 { return leUint64(b[p*page+16+48:]) }
	last := 0
	if txid(1) > txid(0) {
		last = 1
	}
	clear(b[last*page+16+32 : last*page+16+64])
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, ok, err := s.Get(ctx, first); err != nil || !ok || string(v) != "1" {
		t.Errorf("first: got %q, %v, %v; want 1", v, ok, err)
	}
	if v, ok, err := s.Get(ctx, second); err != nil || ok {
		t.Errorf("second: got %q, %v, %v; want it missing (its commit was torn)", v, ok, err)
	}
}

// usedLength is the length of the pages of the database at path that its
// last commit uses (bbolt's high-water mark).
func usedLength(path string) (int64, error) {
	db, err := bolt.Open(path, 0o644, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.View(func(tx *bolt.Tx) error {
		n = tx.Size()
		return nil
	})
	return n, err
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// Stores opened on one directory in one process share the open file.
func TestFileStoreSameProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenFileStore(dir, FileStoreOptions{LockWait: time.Millisecond})
	if err != nil {
		t.Fatalf("second store in the same process: %v", err)
	}
	key := keyHash("k")
	if err := a.Put(ctx, key, []byte("v")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if v, ok, err := b.Get(ctx, key); err != nil || !ok || string(v) != "v" {
		t.Errorf("through the second store after the first closed: got %q, %v, %v; want v", v, ok, err)
	}
	b.Close()
	c, err := OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatalf("reopening after both closed: %v", err)
	}
	c.Close()
}

// holdEnv names the cache directory that TestFileStoreHeld opens in a
// child process.
const holdEnv = "SOCIETY_TEST_HOLD_CACHE"

// TestFileStoreHeld is the child process of TestFileStoreOtherProcess: it
// holds the store until its standard input closes.
func TestFileStoreHeld(t *testing.T) {
	dir := os.Getenv(holdEnv)
	if dir == "" {
		t.Skip("run as a child process of TestFileStoreOtherProcess")
	}
	s, err := OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), keyHash("held"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	fmt.Println("held")
	bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes it
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// Another process holding the file makes Open wait, then fail with
// ErrStoreLocked; once it exits the file opens, with its values.
func TestFileStoreOtherProcess(t *testing.T) {
	dir := t.TempDir()
	// The child's own deadline: a child that hangs ends with its stacks
	// on stderr, which the failure below prints, instead of holding the
	// package's test binary until its deadline.
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreHeld$", "-test.count=1", "-test.timeout=3m")
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if line != "held\n" {
		t.Fatalf("child: got %q, %v (stderr %s), want held", line, err, stderr.String())
	}

	_, err = OpenFileStore(dir, FileStoreOptions{LockWait: 20 * time.Millisecond})
	if !errors.Is(err, ErrStoreLocked) || !strings.Contains(err.Error(), filepath.Join(dir, FileName)) {
		t.Fatalf("got %v, want ErrStoreLocked naming the file", err)
	}

	// A process's cache then keeps its replies in memory, and says so.
	var logged bytes.Buffer
	c, err := OpenCache(dir, CacheReadWrite, nil, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatalf("OpenCache beside the other process: %v", err)
	}
	if _, hit, err := c.Do(context.Background(), keyHash("held"), nil, func(context.Context) ([]byte, error) { return []byte("m"), nil }); err != nil || hit {
		t.Errorf("cache in memory: got hit %v, %v; want a fetch (the file is not read)", hit, err)
	}
	if !strings.Contains(logged.String(), "in use by another process") {
		t.Errorf("got log %q, want a warning that the file is in use", logged.String())
	}
	c.Close()

	stdin.Close()
	if _, err := io.Copy(io.Discard, out); err != nil { // until the child exits
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v (stderr %s)", err, stderr.String())
	}
	s, err := OpenFileStore(dir, FileStoreOptions{})
	if err != nil {
		t.Fatalf("after the other process exited: %v", err)
	}
	defer s.Close()
	if v, ok, err := s.Get(context.Background(), keyHash("held")); err != nil || !ok || string(v) != "v" {
		t.Errorf("the other process's value: got %q, %v, %v; want v", v, ok, err)
	}
}

func TestOpenCache(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "cache")
	off, err := OpenCache(dir, CacheOff, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cache off: got %v for its directory, want nothing created", err)
	}
	if err := off.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time, the file the first closed
		c, err := OpenCache(dir, CacheReadWrite, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Do(ctx, keyHash("k"), nil, func(context.Context) ([]byte, error) { return []byte("v"), nil }); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Errorf("read-write: %v, want the cache file", err)
	}
}
