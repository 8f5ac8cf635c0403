package scenarios

import (
	"strconv"
	"strings"
)

// locate maps every key of a TOML document to the line it is written on,
// using the same path syntax as problem fields: "population.size",
// "models[1].mode", "population.weights.SD". The TOML decoder does not
// expose key positions, so this small scanner walks the source itself. It is
// only run on documents the decoder accepted, but it must still never panic
// or loop on odd input: every step consumes at least one byte.
func locate(src []byte) map[string]int {
	l := &lexer{src: src, line: 1, lines: map[string]int{}, arrays: map[string]int{}}
	l.document()
	return l.lines
}

// lineOf finds the line of field, falling back to the nearest enclosing key
// or table that is written in the source (a missing key is reported on its
// table's header). It returns 0 when nothing encloses field.
func lineOf(lines map[string]int, field string) int {
	for field != "" {
		if n, ok := lines[field]; ok {
			return n
		}
		cut := max(strings.LastIndexByte(field, '.'), strings.LastIndexByte(field, '['))
		if cut < 0 {
			break
		}
		field = field[:cut]
	}
	return 0
}

type lexer struct {
	src    []byte
	pos    int
	line   int
	lines  map[string]int
	arrays map[string]int // array-of-tables path → elements seen so far
}

func (l *lexer) more() bool { return l.pos < len(l.src) }
func (l *lexer) peek() byte { return l.src[l.pos] }

func (l *lexer) record(path string) {
	if path == "" {
		return
	}
	if _, ok := l.lines[path]; !ok {
		l.lines[path] = l.line
	}
}

func (l *lexer) document() {
	table := ""
	for l.more() {
		l.skipSpace()
		if !l.more() {
			return
		}
		switch c := l.peek(); c {
		case '\n':
			l.line++
			l.pos++
		case '#':
			l.skipComment()
		case '[':
			table = l.header()
			l.skipLine()
		default:
			segs := l.key()
			if len(segs) == 0 {
				l.skipLine()
				continue
			}
			path := table
			for _, s := range segs {
				path = join(path, s)
				l.record(path)
			}
			l.skipSpace()
			if l.more() && l.peek() == '=' {
				l.pos++
				l.skipSpace()
				l.value(path)
			}
			l.skipLine()
		}
	}
}

// header reads a [table] or [[array]] header and returns the path it opens.
func (l *lexer) header() string {
	l.pos++ // [
	array := l.more() && l.peek() == '['
	if array {
		l.pos++
	}
	segs := l.key()
	path := ""
	for i, s := range segs {
		path = join(path, s)
		if array && i == len(segs)-1 {
			n := l.arrays[path]
			l.arrays[path] = n + 1
			path += "[" + strconv.Itoa(n) + "]"
		} else if n, ok := l.arrays[path]; ok {
			path += "[" + strconv.Itoa(n-1) + "]"
		}
		l.record(path)
	}
	return path
}

// key reads a possibly dotted key and returns its segments.
func (l *lexer) key() []string {
	var segs []string
	for l.more() {
		l.skipSpace()
		if !l.more() {
			break
		}
		c := l.peek()
		switch {
		case c == '"' || c == '\'':
			start := l.pos
			l.str()
			raw := string(l.src[start:l.pos])
			if s, err := strconv.Unquote(raw); err == nil && c == '"' {
				segs = append(segs, s)
			} else {
				segs = append(segs, strings.Trim(raw, string(c)))
			}
		case bare(c):
			start := l.pos
			for l.more() && bare(l.peek()) {
				l.pos++
			}
			segs = append(segs, string(l.src[start:l.pos]))
		default:
			return segs
		}
		l.skipSpace()
		if !l.more() || l.peek() != '.' {
			return segs
		}
		l.pos++
	}
	return segs
}

// value skips one value, recording the keys of inline tables and the
// elements of arrays under path.
func (l *lexer) value(path string) {
	if !l.more() {
		return
	}
	switch l.peek() {
	case '"', '\'':
		l.str()
	case '[':
		l.pos++
		for i := 0; l.more(); {
			l.skipBlank()
			if !l.more() {
				return
			}
			switch l.peek() {
			case ']':
				l.pos++
				return
			case ',':
				l.pos++
				continue
			}
			elem := path + "[" + strconv.Itoa(i) + "]"
			l.record(elem)
			start := l.pos
			l.value(elem)
			if l.pos == start {
				l.pos++
			}
			i++
		}
	case '{':
		l.pos++
		for l.more() {
			l.skipBlank()
			if !l.more() {
				return
			}
			switch l.peek() {
			case '}':
				l.pos++
				return
			case ',':
				l.pos++
				continue
			}
			segs := l.key()
			if len(segs) == 0 {
				l.pos++
				continue
			}
			p := path
			for _, s := range segs {
				p = join(p, s)
				l.record(p)
			}
			l.skipSpace()
			if l.more() && l.peek() == '=' {
				l.pos++
				l.skipSpace()
				start := l.pos
				l.value(p)
				if l.pos == start && l.more() {
					l.pos++
				}
			}
		}
	default:
		for l.more() {
			switch l.peek() {
			case ',', ']', '}', '\n', '#':
				return
			}
			l.pos++
		}
	}
}

// str skips a basic, literal or multi-line string starting at l.pos.
func (l *lexer) str() {
	q := l.peek()
	if l.pos+2 < len(l.src) && l.src[l.pos+1] == q && l.src[l.pos+2] == q {
		l.pos += 3
		for l.more() {
			c := l.peek()
			switch {
			case c == '\\' && q == '"':
				if l.pos+1 < len(l.src) && l.src[l.pos+1] == '\n' {
					l.line++
				}
				l.pos += 2
				continue
			case c == '\n':
				l.line++
			case c == q && l.pos+2 < len(l.src) && l.src[l.pos+1] == q && l.src[l.pos+2] == q:
				l.pos += 3
				// Up to two quotes may sit right before the closing three.
				for i := 0; i < 2 && l.more() && l.peek() == q; i++ {
					l.pos++
				}
				return
			}
			l.pos++
		}
		return
	}
	l.pos++
	for l.more() {
		c := l.peek()
		switch {
		case c == '\\' && q == '"':
			l.pos += 2
			continue
		case c == q:
			l.pos++
			return
		case c == '\n':
			return
		}
		l.pos++
	}
}

func (l *lexer) skipSpace() {
	for l.more() && (l.peek() == ' ' || l.peek() == '\t' || l.peek() == '\r') {
		l.pos++
	}
}

// skipBlank skips spaces, newlines and comments inside arrays and tables.
func (l *lexer) skipBlank() {
	for l.more() {
		switch l.peek() {
		case ' ', '\t', '\r':
			l.pos++
		case '\n':
			l.line++
			l.pos++
		case '#':
			l.skipComment()
		default:
			return
		}
	}
}

func (l *lexer) skipComment() {
	for l.more() && l.peek() != '\n' {
		l.pos++
	}
}

// skipLine moves to the end of the current line, leaving the newline.
func (l *lexer) skipLine() {
	for l.more() && l.peek() != '\n' {
		switch l.peek() {
		case '#':
			l.skipComment()
			return
		case '"', '\'':
			l.str()
			continue
		}
		l.pos++
	}
}

func bare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// join appends key segment s to path, quoting it when it is not bare.
func join(path, s string) string {
	seg := s
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r > 0x7f || !bare(byte(r)) }) >= 0 {
		seg = strconv.Quote(s)
	}
	if path == "" {
		return seg
	}
	return path + "." + seg
}
