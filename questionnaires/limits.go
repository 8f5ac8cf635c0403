package questionnaires

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Input limits. The TOML decoder holds a whole file in memory several times
// over and recurses once per level of nesting, so a small file of nested
// arrays (60 KB) costs 1.4 GB and a larger one exhausts memory: files are
// bounded before they are decoded.
const (
	// MaxFileBytes is the largest instrument file read: the largest
	// built-in instrument is under 50 KB.
	MaxFileBytes = 16 << 20
	// MaxNesting is the deepest nesting of arrays and inline tables
	// (table headers count one level per bracket) a TOML input may have;
	// instruments and scenarios need at most three.
	MaxNesting = 32
)

// ErrTooLarge reports an input over its size limit.
var ErrTooLarge = errors.New("too large")

// ReadFileMax reads the file at path, refusing it with ErrTooLarge when it
// holds more than limit bytes; the file is never read past the limit.
func ReadFileMax(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: more than %s, the most this file may hold", ErrTooLarge, bytesText(limit))
	}
	return data, nil
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// TOMLTooDeep returns the line (from 1) of the first '[' or '{' of a TOML
// document that opens a level deeper than limit, or 0 when none does. It
// skips comments and strings (basic, literal and their multi-line forms),
// and is only a guard run before decoding: it accepts some documents the
// decoder will refuse, never the other way round.
func TOMLTooDeep(data []byte, limit int) int {
	line, depth := 1, 0
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line++
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			i, line = skipString(data, i, line)
		case '[', '{':
			depth++
			if depth > limit {
				return line
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return 0
}

// skipString returns the index of the last byte of the string that opens
// at data[i], and the line it ends on.
func skipString(data []byte, i, line int) (int, int) {
	c := data[i]
	multi := i+2 < len(data) && data[i+1] == c && data[i+2] == c
	if multi {
		i += 2
	}
	for i++; i < len(data); i++ {
		switch {
		case data[i] == '\n':
			if !multi {
				return i - 1, line // unterminated: the decoder reports it
			}
			line++
		case data[i] == '\\' && c == '"':
			if i+1 < len(data) && data[i+1] == '\n' {
				line++
			}
			i++
		case data[i] == c && !multi:
			return i, line
		case data[i] == c && i+2 < len(data) && data[i+1] == c && data[i+2] == c:
			return i + 2, line
		}
	}
	return i, line
}
