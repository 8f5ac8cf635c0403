package modelserver

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCheckAddr(t *testing.T) {
	cases := []struct {
		addr   string
		public bool
		ok     bool
	}{
		{"127.0.0.1:8000", false, true},
		{"127.0.0.2:8000", false, true},
		{"[::1]:8000", false, true},
		{"localhost:8000", false, true},
		{"0.0.0.0:8000", false, false},
		{"0.0.0.0:8000", true, true},
		{":8000", true, true},
		{"192.168.1.5:8000", false, false},
		{"[::]:8000", false, false},
		{"127.0.0.1", false, false},
		{"127.0.0.1:", true, false},
	}
	for _, c := range cases {
		t.Run(c.addr, func(t *testing.T) {
			err := CheckAddr(c.addr, c.public)
			if (err == nil) != c.ok {
				t.Errorf("public=%v: got %v, want ok=%v", c.public, err, c.ok)
			}
		})
	}
}

// parsed defines the flags on a fresh set and parses args.
func parsed(t *testing.T, args ...string) *Flags {
	t.Helper()
	fs := flag.NewFlagSet("model-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return f
}

func TestFlagsOptions(t *testing.T) {
	f := parsed(t, "--addr", "127.0.0.1:0", "--latency", "20ms", "--slots", "3", "--error-rate", "0.1",
		"--garbage-rate", "0.2", "--timeout-rate", "0.3", "--seed", "9", "--models", " a, ,b ")
	if err := f.Check(); err != nil {
		t.Fatalf("check: got %v, want nil", err)
	}
	got := f.Options()
	want := Options{Seed: 9, Latency: 20 * time.Millisecond, Slots: 3, ErrorRate: 0.1, GarbageRate: 0.2, TimeoutRate: 0.3, Models: []string{"a", "b"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("options: got %+v, want %+v", got, want)
	}
	if f.Addr != "127.0.0.1:0" {
		t.Errorf("addr: got %q, want 127.0.0.1:0", f.Addr)
	}
	if d := parsed(t).Options(); d.Slots != 64 || d.Seed != 1 || d.Models != nil {
		t.Errorf("defaults: got %+v, want 64 slots, seed 1, any model", d)
	}
}

// TestFlagsCheck: Check names every problem at once, each by its flag, in
// the order of the flags' help.
func TestFlagsCheck(t *testing.T) {
	err := parsed(t, "--slots", "0", "--latency", "-1s", "--error-rate", "0.7", "--garbage-rate", "NaN",
		"--timeout-rate", "0.6", "--addr", "10.0.0.1:80").Check()
	if err == nil {
		t.Fatal("got nil, want every problem")
	}
	want := []string{"--slots", "--latency", "--garbage-rate", "--error-rate + --timeout-rate", "--addr"}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w+":") && !strings.HasPrefix(lines[i], w+" ") {
			t.Errorf("problem %d: got %q, want it about %s", i, lines[i], w)
		}
	}
	if err := parsed(t, "--addr", "0.0.0.0:80", "--public").Check(); err != nil {
		t.Errorf("--public: got %v, want nil", err)
	}
}
