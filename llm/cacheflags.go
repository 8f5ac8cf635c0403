package llm

import (
	"flag"
	"fmt"
)

// DefaultSharedCacheBytes bounds the shared tier of the model cache (the
// cluster's reply bucket) unless told: about two million replies of
// distribution mode (~500 bytes each).
const DefaultSharedCacheBytes = 1 << 30

// CacheFlags are the model cache options of a command that asks models:
// where the cache lives, its mode and the bound of its shared tier. Like
// bus.Flags, they live with the options they set.
type CacheFlags struct {
	// Dir is the cache's directory; empty means the user's cache
	// directory.
	Dir string
	// SharedMiB bounds, in MiB, the shared tier a command on a cluster
	// opens (runs with --nats and agent hosts).
	SharedMiB int64

	mode modeFlag
	off  bool
}

// AddCacheFlags defines --cache, --cache-mode, --no-cache and
// --shared-cache-mib on fs; dirNote ends --cache's help with what the
// cache does for the command.
func AddCacheFlags(fs *flag.FlagSet, dirNote string) *CacheFlags {
	c := &CacheFlags{}
	fs.StringVar(&c.Dir, "cache", "", "model response cache `DIR` (default: the user's cache directory); "+dirNote)
	fs.Var(&c.mode, "cache-mode", "what the run does with the model response cache: read-write (default), read (use stored replies, store none), write (store fresh replies, use none stored before) or off")
	fs.BoolVar(&c.off, "no-cache", false, "neither read nor write the model response cache (--cache-mode off)")
	fs.Int64Var(&c.SharedMiB, "shared-cache-mib", DefaultSharedCacheBytes>>20, "with --nats: bound in `MiB` of the cluster's shared model reply bucket (society-replies), created by the first role that needs it")
	return c
}

// Check refuses contradictory or impossible settings: the first problem,
// named by its flag. Every error is the user's input.
func (c *CacheFlags) Check() error {
	if c.off && c.mode.set && c.mode.mode != CacheOff {
		return fmt.Errorf("--no-cache and --cache-mode %s contradict each other", c.mode.mode)
	}
	if c.SharedMiB <= 0 {
		return fmt.Errorf("--shared-cache-mib: must be positive, got %d", c.SharedMiB)
	}
	return nil
}

// Mode is the cache mode the flags ask for.
func (c *CacheFlags) Mode() CacheMode {
	if c.off {
		return CacheOff
	}
	return c.mode.mode
}

// SharedBytes is the bound of the shared tier in bytes.
func (c *CacheFlags) SharedBytes() int64 { return c.SharedMiB << 20 }

// modeFlag is --cache-mode: a mode read by ParseCacheMode, and whether it
// was given.
type modeFlag struct {
	mode CacheMode
	set  bool
}

func (f *modeFlag) String() string { return f.mode.String() }

func (f *modeFlag) Set(s string) error {
	m, err := ParseCacheMode(s)
	if err != nil {
		return err
	}
	f.mode, f.set = m, true
	return nil
}
