package modelserver

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"
)

// Flags are the command-line options of a program that serves a Server
// (`society model-server`): where it listens and its Options. Like
// bus.Flags, they live with the options they set.
type Flags struct {
	// Addr is HOST:PORT, a loopback address unless --public (CheckAddr).
	Addr   string
	public bool

	latency                             time.Duration
	slots                               int
	errorRate, garbageRate, timeoutRate float64
	seed                                uint64
	models                              string
}

// AddFlags defines --addr, --public, --latency, --slots, --error-rate,
// --garbage-rate, --timeout-rate, --seed and --models on fs.
func AddFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Addr, "addr", "127.0.0.1:8000", "address to listen on (loopback unless --public)")
	fs.BoolVar(&f.public, "public", false, "allow listening on a non-loopback address")
	fs.DurationVar(&f.latency, "latency", 0, "time each request holds its slot (e.g. 200ms)")
	fs.IntVar(&f.slots, "slots", 64, "requests served at once; the rest queue")
	fs.Float64Var(&f.errorRate, "error-rate", 0, "fraction of requests answered 429 or 500 (half each)")
	fs.Float64Var(&f.garbageRate, "garbage-rate", 0, "fraction of completions whose text is unreadable")
	fs.Float64Var(&f.timeoutRate, "timeout-rate", 0, "fraction of requests that hang until the client gives up")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the synthetic respondents and of the injected faults")
	fs.StringVar(&f.models, "models", "", "comma-separated model names to accept (default: any)")
	return f
}

// Check reports every problem of the flags at once (errors.Join), each
// named by its flag; nil when there is none. Every error is the user's
// input.
func (f *Flags) Check() error {
	var problems []error
	if f.slots < 1 {
		problems = append(problems, fmt.Errorf("--slots: must be at least 1, got %d", f.slots))
	}
	if f.latency < 0 {
		problems = append(problems, fmt.Errorf("--latency: must not be negative, got %v", f.latency))
	}
	rates := []struct {
		name string
		v    float64
	}{{"--error-rate", f.errorRate}, {"--garbage-rate", f.garbageRate}, {"--timeout-rate", f.timeoutRate}}
	for _, r := range rates {
		if !(r.v >= 0 && r.v <= 1) {
			problems = append(problems, fmt.Errorf("%s: must be between 0 and 1, got %v", r.name, r.v))
		}
	}
	if f.errorRate+f.timeoutRate > 1 {
		problems = append(problems, fmt.Errorf("--error-rate + --timeout-rate: must be at most 1, got %v", f.errorRate+f.timeoutRate))
	}
	if err := CheckAddr(f.Addr, f.public); err != nil {
		problems = append(problems, err)
	}
	return errors.Join(problems...)
}

// Options are the server's options the flags set; Seed is also the seed
// of the respondents the caller serves.
func (f *Flags) Options() Options {
	var names []string
	for n := range strings.SplitSeq(f.models, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return Options{
		Seed:        f.seed,
		Latency:     f.latency,
		Slots:       f.slots,
		ErrorRate:   f.errorRate,
		GarbageRate: f.garbageRate,
		TimeoutRate: f.timeoutRate,
		Models:      names,
	}
}

// CheckAddr refuses, unless public, an --addr that other machines could
// reach: the server answers anyone, without keys. addr must be HOST:PORT
// with a port; localhost and loopback addresses are always allowed.
func CheckAddr(addr string, public bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: want HOST:PORT: %v", addr, err)
	}
	if port == "" {
		return fmt.Errorf("--addr %q: want HOST:PORT with a port", addr)
	}
	if public {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	if host == "" {
		host = "every interface"
	}
	return fmt.Errorf("--addr %q: %s is not a loopback address; add --public to serve other machines", addr, host)
}
