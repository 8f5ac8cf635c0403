package llm

import (
	"flag"
	"io"
	"testing"
)

// cacheFlags parses args as a command's cache flags.
func cacheFlags(t *testing.T, args ...string) (*CacheFlags, error) {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := AddCacheFlags(fs, "reruns make no model calls")
	return c, fs.Parse(args)
}

func TestCacheFlags(t *testing.T) {
	cases := []struct {
		args    []string
		mode    CacheMode
		shared  int64
		wantErr string // Check's error; "" for none
	}{
		{nil, CacheReadWrite, DefaultSharedCacheBytes, ""},
		{[]string{"--no-cache"}, CacheOff, DefaultSharedCacheBytes, ""},
		{[]string{"--cache-mode", "read"}, CacheRead, DefaultSharedCacheBytes, ""},
		{[]string{"--cache-mode", "write", "--shared-cache-mib", "3"}, CacheWrite, 3 << 20, ""},
		// --no-cache with the mode it means is no contradiction.
		{[]string{"--no-cache", "--cache-mode", "off"}, CacheOff, DefaultSharedCacheBytes, ""},
		{[]string{"--no-cache", "--cache-mode", "read-write"}, CacheOff, DefaultSharedCacheBytes, "--no-cache and --cache-mode read-write contradict each other"},
		{[]string{"--shared-cache-mib", "0"}, CacheReadWrite, 0, "--shared-cache-mib: must be positive, got 0"},
	}
	for _, c := range cases {
		f, err := cacheFlags(t, c.args...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if got := f.Mode(); got != c.mode {
			t.Errorf("%v: mode: got %v, want %v", c.args, got, c.mode)
		}
		if got := f.SharedBytes(); got != c.shared {
			t.Errorf("%v: shared bytes: got %d, want %d", c.args, got, c.shared)
		}
		err = f.Check()
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%v: check: got %v, want nil", c.args, err)
		case c.wantErr != "" && (err == nil || err.Error() != c.wantErr):
			t.Errorf("%v: check: got %v, want %q", c.args, err, c.wantErr)
		}
	}
	if _, err := cacheFlags(t, "--cache-mode", "sometimes"); err == nil {
		t.Error("--cache-mode sometimes: got no error, want the mode refused")
	}
	if f, _ := cacheFlags(t, "--cache", "/tmp/c"); f.Dir != "/tmp/c" {
		t.Errorf("--cache: got %q, want /tmp/c", f.Dir)
	}
}
