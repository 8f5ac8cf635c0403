package llm

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestAddFields(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		fields map[string]any
		want   string // as decoded JSON; empty: an error is wanted
	}{
		{"empty object", `{}`, map[string]any{"temperature": 0.0}, `{"temperature":0}`},
		{"appended sorted", `{"model":"m","n":2}` + "\n", map[string]any{"seed": uint64(1) << 63, "temperature": 0.0},
			`{"model":"m","n":2,"seed":9223372036854775808,"temperature":0}`},
		{"nested", `{"model":"m"}`, map[string]any{"structured_outputs": map[string]any{"choice": []string{"1", "2"}}},
			`{"model":"m","structured_outputs":{"choice":["1","2"]}}`},
		{"replaces a present key", `{"temperature":0.5,"messages":[{"content":"\"seed\": 3"}]}`, map[string]any{"temperature": 0.0},
			`{"temperature":0,"messages":[{"content":"\"seed\": 3"}]}`},
		{"not an object", `[1,2]`, map[string]any{"seed": 1}, ""},
		{"garbage", `{"a":`, map[string]any{"seed": 1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := addFields([]byte(tt.body), tt.fields)
			if tt.want == "" {
				if err == nil && json.Valid(got) {
					t.Fatalf("got %s, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatalf("got invalid JSON %s: %v", got, err)
			}
			json.Unmarshal([]byte(tt.want), &w)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBreakerStates(t *testing.T) {
	b := newBreaker(2, time.Second)
	t0 := time.Unix(1000, 0)
	step := func(name string, now time.Time, wantOK, wantProbe bool) bool {
		t.Helper()
		ok, probe, _, _ := b.acquire(now)
		if ok != wantOK || probe != wantProbe {
			t.Errorf("%s: got ok %v probe %v, want %v %v", name, ok, probe, wantOK, wantProbe)
		}
		return probe
	}
	step("closed", t0, true, false)
	b.done(false, false, t0)
	step("one failure", t0, true, false)
	b.done(false, false, t0)
	step("open", t0.Add(500*time.Millisecond), false, false)
	p := step("half-open probe", t0.Add(time.Second), true, true)
	step("second caller while probing", t0.Add(time.Second), false, false)
	b.done(p, false, t0.Add(time.Second))
	step("probe failed: open again", t0.Add(1500*time.Millisecond), false, false)
	p = step("next probe", t0.Add(2*time.Second), true, true)
	b.done(p, true, t0.Add(2*time.Second))
	step("probe succeeded: closed", t0.Add(2*time.Second), true, false)
}

func TestBackoff(t *testing.T) {
	p := retryPolicy{maxRetries: 5, base: 100 * time.Millisecond, max: time.Second}
	for attempt := range 8 {
		ceil := min(100*time.Millisecond<<attempt, time.Second)
		for range 50 {
			if d := p.backoff(attempt, 0); d < 0 || d > ceil {
				t.Fatalf("backoff(%d): got %v, want within [0, %v]", attempt, d, ceil)
			}
		}
	}
	if d := p.backoff(0, 700*time.Millisecond); d < 700*time.Millisecond {
		t.Errorf("with Retry-After 700ms: got %v, want at least 700ms", d)
	}
	if d := p.backoff(0, time.Hour); d != time.Second {
		t.Errorf("with Retry-After 1h: got %v, want the 1s cap", d)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		h    string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"-1", 0}, {"soon", 0},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tt.h, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q): got %v, want %v", tt.h, got, tt.want)
		}
	}
}

func TestReadSized(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		n       int64
		limit   int64
		want    string
		wantErr bool
	}{
		{"announced", "hello", 5, 100, "hello", false},
		{"unknown", "hello", -1, 100, "hello", false},
		{"longer than announced", "hello world", 5, 100, "hello world", false},
		{"shorter than announced", "hi", 5, 100, "", true},
		{"over the limit", "hello world", -1, 5, "hello", false},
		{"announced over the limit", "hello world", 11, 5, "hello", false},
		{"longer than announced, limited", "hello world", 5, 7, "hello w", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readSized(strings.NewReader(tt.body), tt.n, tt.limit)
			if (err != nil) != tt.wantErr || (!tt.wantErr && string(got) != tt.want) {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
			// Into a reused buffer, too small, large enough and with old
			// contents: the same.
			for _, dst := range [][]byte{make([]byte, 0, 1), []byte("xxxxxxxxxxxxxxxxxxxxxxxx")[:0]} {
				got, err := readSizedInto(dst, iotest.OneByteReader(strings.NewReader(tt.body)), tt.n, tt.limit)
				if (err != nil) != tt.wantErr || (!tt.wantErr && string(got) != tt.want) {
					t.Errorf("into a buffer of %d: got %q, %v; want %q, error %v", cap(dst), got, err, tt.want, tt.wantErr)
				}
			}
		})
	}
}
