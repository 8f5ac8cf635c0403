package agent

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBoundText(t *testing.T) {
	long := strings.Repeat("I would rather not put a number on it. ", 1100) // 42,900 bytes
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"short", "four", 10, "four"},
		{"exact", "0123456789", 10, "0123456789"},
		{"ascii", "0123456789abcdefghijklmnopqrstuvwxyz", 20, "012345… [36 bytes]"},
		{"rune boundary", strings.Repeat("дент", 10), 23, "дент… [80 bytes]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := BoundText(tc.in, tc.max)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	got := BoundText(long, MaxRaw)
	if len(got) > MaxRaw || !utf8.ValidString(got) || !strings.HasPrefix(got, "I would rather") || !strings.HasSuffix(got, "[42900 bytes]") {
		t.Errorf("long text: got %d bytes ending %q, want at most %d ending with its length", len(got), got[len(got)-20:], MaxRaw)
	}
}
