package agent

import (
	"strconv"
	"unicode/utf8"
)

// MaxRaw and MaxReason bound the text kept of an invalid answer. Answers
// travel in batches of a whole shard, and a model may write anything (a
// reply repeated to its token limit runs to tens of kilobytes): without a
// bound, one shard's invalid answers would outgrow any message a bus
// carries. 4 KiB keeps every reply a person needs to read to see what went
// wrong; the full length is kept beside it (Invalid.RawBytes).
const (
	MaxRaw    = 4 << 10
	MaxReason = 1 << 10
)

// BoundText returns s when it has at most max bytes, else its first bytes
// (cut at a UTF-8 boundary) followed by a note of the full length, all
// within max bytes.
func BoundText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	note := "… [" + strconv.Itoa(len(s)) + " bytes]"
	cut := max - len(note)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + note
}
