package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/society-sim/society/sim"
	"github.com/society-sim/society/sim/simbench"
)

// benchChild is the hidden "bench --one N --part P" mode: one measurement
// in this process, reported as JSON on stdout.
func benchChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench --one", "bench --one N --part pipeline|nobus [--seed S] [--cpuprofile FILE]", stderr)
	part := fs.String("part", "pipeline", "what to measure: pipeline or nobus")
	seed := fs.Uint64("seed", 1, "scenario seed")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to `FILE`")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: bench --one takes one population size", errUsage)
	}
	n, err := strconv.Atoi(pos[0])
	if err != nil || n < 1 {
		return fmt.Errorf("%w: bench --one: %q is not a population size", errUsage, pos[0])
	}
	if *part != "pipeline" && *part != "nobus" {
		return fmt.Errorf("%w: bench --one: --part %q: want pipeline or nobus", errUsage, *part)
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	r, err := measureOne(ctx, n, *seed, *part)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(r)
}

// measureOne is one measurement of the single-process engine.
func measureOne(ctx context.Context, n int, seed uint64, part string) (*simbench.Result, error) {
	return simbench.Measure(ctx, n, seed, part, func(obs sim.Observer, cacheDir string) (*sim.Engine, func()) {
		return newEngine(ctx, runConfig{CacheDir: cacheDir, Observer: obs})
	})
}
