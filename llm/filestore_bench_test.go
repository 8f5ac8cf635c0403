package llm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// dirStore is the store of earlier versions, one file per reply under
// dir/xx/key, kept here to measure FileStore against it.
type dirStore struct{ dir string }

func (s dirStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	v, err := os.ReadFile(filepath.Join(s.dir, key[:2], key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	return v, err == nil, err
}

func (s dirStore) Put(_ context.Context, key string, val []byte) error {
	dir := filepath.Join(s.dir, key[:2])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(val)
	if err := errors.Join(werr, f.Close()); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, key))
}

// sampleEntry is a sample-mode cache value as the client writes it.
var sampleEntry = []byte(`{"value":4,"valid":true,"raw":"4"}`)

// BenchmarkStores writes b.N replies from 256 goroutines (a sample run's
// requests in flight; ns/op is per Put), then reads them back from one,
// and reports the files and bytes the store left on disk. The directory is
// $SOCIETY_BENCH_DIR when set (put it on the disk the cache lives on: a
// file sync on tmpfs costs nothing), else a temporary one. Run with -benchtime=40000x for the size of
// a 1,000 × PVQ-40 sample run.
func BenchmarkStores(b *testing.B) {
	for _, name := range []string{"dir", "file"} {
		b.Run(name, func(b *testing.B) {
			dir := benchDir(b)
			var s Store = dirStore{dir}
			if name == "file" {
				fs, err := OpenFileStore(dir, FileStoreOptions{})
				if err != nil {
					b.Fatal(err)
				}
				defer fs.Close()
				s = fs
			}
			ctx := context.Background()
			var next atomic.Int64
			cpu0 := cpuTime()
			b.SetParallelism(256 / runtime.GOMAXPROCS(0)) // 256 writers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Put(ctx, keyHash(fmt.Sprint(next.Add(1))), sampleEntry); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if fs, ok := s.(*FileStore); ok {
				// The commits are behind the Puts: they count too.
				if err := fs.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/put")
			files, bytes := diskUse(b, dir)
			b.ReportMetric(float64(files), "files")
			b.ReportMetric(float64(bytes)/float64(b.N), "disk-B/entry")
			b.ReportMetric(float64(bytes)/(1<<20), "disk-MiB")
			n := int(next.Load())
			start := time.Now()
			for i := 1; i <= n; i++ {
				v, ok, err := s.Get(ctx, keyHash(fmt.Sprint(i)))
				if err != nil || !ok || string(v) != string(sampleEntry) {
					b.Fatalf("get %d: got %q, %v, %v", i, v, ok, err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n), "get-ns/entry")
		})
	}
}

// diskUse is the number of files under dir and the bytes they occupy on
// disk (allocated blocks, not length).
func diskUse(tb testing.TB, dir string) (files int, bytes int64) {
	tb.Helper()
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		fi, err := d.Info()
		if err != nil {
			return err
		}
		bytes += blocks(fi)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return files, bytes
}

func benchDir(b *testing.B) string {
	root := os.Getenv("SOCIETY_BENCH_DIR")
	if root == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(root, "bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
