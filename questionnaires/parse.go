package questionnaires

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/society-sim/society/values"
)

// Scale sizes outside this range are not ordinal rating scales.
const (
	minPoints = 2
	maxPoints = 11
)

// Load reads and parses an instrument file; errors name the path.
func Load(path string) (*Instrument, error) {
	data, err := ReadFileMax(path, MaxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("load instrument %s: %w", path, err)
	}
	return Parse(data, path)
}

// Parse decodes and validates an instrument. source names the data in
// errors (usually the file path). Every problem is reported at once, one per
// line, as "source:line: field: message". On success the items are in id
// order, so Items[i].ID == i+1.
func Parse(data []byte, source string) (*Instrument, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: %w: %d bytes, more than %s", source, ErrTooLarge, len(data), bytesText(MaxFileBytes))
	}
	if line := TOMLTooDeep(data, MaxNesting); line > 0 {
		return nil, fmt.Errorf("%s:%d: arrays or tables nested more than %d deep", source, line, MaxNesting)
	}
	lines := indexLines(data)
	p := &problems{source: source, lines: lines}

	var in Instrument
	md, err := toml.Decode(string(data), &in)
	if err != nil {
		p.decodeError(err)
		return nil, p.err()
	}
	checkKeys(md, p)
	validate(&in, p)
	if err := p.err(); err != nil {
		return nil, err
	}
	sort.Slice(in.Items, func(i, j int) bool { return in.Items[i].ID < in.Items[j].ID })
	in.index()
	return &in, nil
}

// Validate checks an instrument built or changed in code with the rules of
// Parse, puts its items in id order and rebuilds the key tables. Errors are
// named after the instrument rather than a file and carry no lines.
func (in *Instrument) Validate() error {
	source := in.Name
	if source == "" {
		source = "instrument"
	}
	p := &problems{source: source}
	validate(in, p)
	if err := p.err(); err != nil {
		return err
	}
	sort.Slice(in.Items, func(i, j int) bool { return in.Items[i].ID < in.Items[j].ID })
	in.index()
	return nil
}

// known lists the keys of each table, case-sensitive: the decoder matches
// struct fields case-insensitively, which would let "Name" through.
var known = map[string]map[string]bool{
	"":      {"name": true, "title": true, "citation": true, "adapted": true, "kind": true, "instruction": true, "scale": true, "items": true},
	"scale": {"min": true, "max": true, "labels": true},
	"items": {"id": true, "text": true, "key": true, "facet": true, "reverse": true},
}

// checkKeys reports every key that is not part of the format, once, at the
// outermost unknown level. It checks names itself rather than relying on the
// decoder's undecoded list, because the decoder matches struct fields
// case-insensitively.
func checkKeys(md toml.MetaData, p *problems) {
	item := -1
	reported := map[string]bool{}
	for _, k := range md.Keys() {
		if len(k) == 1 && k[0] == "items" {
			item++
		}
		var field, name string
		switch {
		case !known[""][k[0]]:
			name = k[0]
		case len(k) >= 2 && known[k[0]] != nil && !known[k[0]][k[1]]:
			field, name = k[0], k[1]
			if field == "items" {
				field = fmt.Sprintf("items[%d]", max(item, 0))
			}
		default:
			// Known, or a known field given as a table, which the decoder
			// reports as a type error.
			continue
		}
		path := name
		if field != "" {
			path = field + "." + name
		}
		if reported[path] {
			continue
		}
		reported[path] = true
		msg := fmt.Sprintf("unknown key %q", name)
		if field != "" {
			msg = field + ": " + msg
		}
		p.push(p.line(path, field), msg)
	}
}

var codeName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

func validate(in *Instrument, p *problems) {
	if strings.TrimSpace(in.Name) == "" {
		p.add("name", "", "missing: every instrument needs a name")
	} else if !codeName.MatchString(in.Name) {
		p.add("name", "", "%q: use lowercase letters, digits, '-' and '_'", in.Name)
	}
	if strings.TrimSpace(in.Instruction) == "" {
		p.add("instruction", "", "missing: the respondent needs an instruction")
	}
	if in.Adapted && strings.TrimSpace(in.Citation) == "" {
		p.add("citation", "adapted", "missing: an adapted instrument must cite its original")
	}
	switch in.Kind {
	case KindValues, KindTraits, KindBehaviour, KindGame:
	case "":
		p.add("kind", "", "missing: want one of %s", kindList())
	default:
		p.add("kind", "", "unknown kind %q (want one of %s)", in.Kind, kindList())
	}

	s := in.Scale
	scaleOK := true
	switch {
	case s.Min < 0:
		p.add("scale.min", "scale", "%d: the scale must not start below 0", s.Min)
		scaleOK = false
	case s.Max < s.Min:
		p.add("scale.max", "scale", "%d is below min %d", s.Max, s.Min)
		scaleOK = false
	case s.Points() < minPoints || s.Points() > maxPoints:
		p.add("scale.max", "scale", "%d..%d has %d points (want %d to %d)", s.Min, s.Max, s.Points(), minPoints, maxPoints)
		scaleOK = false
	}
	if scaleOK && len(s.Labels) != s.Points() {
		p.add("scale.labels", "scale", "%d labels for %d points (%d..%d): want one label per point", len(s.Labels), s.Points(), s.Min, s.Max)
	}
	for i, l := range s.Labels {
		if strings.TrimSpace(l) == "" {
			p.add("scale.labels", "scale", "label %d is empty", i+1)
		}
	}

	n := len(in.Items)
	if n == 0 {
		p.add("items", "", "no items")
	}
	seen := make(map[int]int, n)
	for i, it := range in.Items {
		f := fmt.Sprintf("items[%d]", i)
		switch first, dup := seen[it.ID]; {
		case it.ID < 1 || it.ID > n:
			p.add(f+".id", f, "%d: want an id from 1 to %d (one per item)", it.ID, n)
		case dup:
			p.add(f+".id", f, "duplicate id %d (also items[%d])", it.ID, first)
		default:
			seen[it.ID] = i
		}
		if strings.TrimSpace(it.Text) == "" {
			p.add(f+".text", f, "missing: the item needs a text")
		}
		if strings.TrimSpace(it.Key) == "" {
			p.add(f+".key", f, "missing: the item needs a key")
			continue
		}
		if in.Kind == KindValues {
			if _, ok := valueCode(it.Key); !ok {
				if pv, err := values.Parse(it.Key); err == nil && pv.Valid() {
					p.add(f+".key", f, "%q: write the value code %q", it.Key, pv.Code())
				} else {
					p.add(f+".key", f, "unknown value key %q (want one of %s)", it.Key, strings.Join(values.Codes(), ", "))
				}
			}
		}
	}
	if in.Kind == KindValues && n > 0 {
		var covered [values.N]bool
		for _, it := range in.Items {
			if v, ok := valueCode(it.Key); ok {
				covered[v] = true
			}
		}
		var miss []string
		for _, v := range values.All() {
			if !covered[v] {
				miss = append(miss, v.Code())
			}
		}
		if len(miss) > 0 {
			p.add("items", "", "no item for value %s: a values instrument must measure all ten", strings.Join(miss, ", "))
		}
	}
}

// valueCode resolves a basic value by its exact code.
func valueCode(key string) (values.Value, bool) {
	v, err := values.Parse(key)
	if err != nil || !v.Valid() || v.Code() != key {
		return values.None, false
	}
	return v, true
}

func kindList() string {
	var s []string
	for _, k := range Kinds() {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// problems collects validation errors with their lines.
type problems struct {
	source string
	lines  map[string]int
	errs   []error
	lineOf []int // the line of each error, to report them in file order
}

// add records a problem with field path; the line is that of path, or of
// fallback (a parent field) when path is not written in the file.
func (p *problems) add(path, fallback, format string, args ...any) {
	line := p.line(path, fallback)
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	p.push(line, msg)
}

func (p *problems) line(path, fallback string) int {
	if line := p.lines[path]; line > 0 {
		return line
	}
	return p.lines[fallback]
}

func (p *problems) push(line int, msg string) {
	p.lineOf = append(p.lineOf, line)
	if line > 0 {
		p.errs = append(p.errs, fmt.Errorf("%s:%d: %s", p.source, line, msg))
		return
	}
	p.errs = append(p.errs, fmt.Errorf("%s: %s", p.source, msg))
}

func (p *problems) err() error {
	order := make([]int, len(p.errs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return p.lineOf[order[a]] < p.lineOf[order[b]] })
	errs := make([]error, len(order))
	for i, j := range order {
		errs[i] = p.errs[j]
	}
	return errors.Join(errs...)
}

// decoderLine matches the decoder's type errors, which are plain errors
// with the position in the text.
var decoderLine = regexp.MustCompile(`^toml: line (\d+)(?: \(last key "([^"]*)"\))?: (.*)$`)

func (p *problems) decodeError(err error) {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			msg = pe.LastKey + ": " + msg
		}
		p.push(pe.Position.Line, msg)
		return
	}
	if m := decoderLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		msg := m[3]
		if m[2] != "" {
			msg = m[2] + ": " + msg
		}
		p.push(line, msg)
		return
	}
	p.push(0, strings.TrimPrefix(err.Error(), "toml: "))
}

// indexLines maps the field paths written in a TOML file ("name",
// "scale.labels", "items[2]", "items[2].key") to the line where each is
// first written. It reads the common layout of instrument files (key =
// value lines, [table] and [[array]] headers) and only serves error
// messages: a path it cannot place simply has no line.
func indexLines(data []byte) map[string]int {
	m := map[string]int{}
	set := func(path string, n int) {
		if _, ok := m[path]; !ok {
			m[path] = n
		}
	}
	table := ""
	arrays := map[string]int{}
	inString := "" // the delimiter of the multi-line string being read
	for n, line := range strings.Split(string(data), "\n") {
		n++
		if inString != "" {
			if strings.Count(line, inString)%2 == 1 {
				inString = ""
			}
			continue
		}
		t := strings.TrimSpace(line)
		switch {
		case t == "" || t[0] == '#':
		case strings.HasPrefix(t, "[["):
			name := header(t[2:], "]]")
			table = fmt.Sprintf("%s[%d]", name, arrays[name])
			arrays[name]++
			set(table, n)
		case t[0] == '[':
			table = header(t[1:], "]")
			set(table, n)
		default:
			key, rest, ok := splitKey(t)
			if !ok {
				continue
			}
			path := key
			if table != "" {
				path = table + "." + key
			}
			set(path, n)
			for _, d := range []string{`"""`, `'''`} {
				if strings.HasPrefix(rest, d) && strings.Count(rest, d)%2 == 1 {
					inString = d
				}
			}
		}
	}
	return m
}

func header(s, end string) string {
	if i := strings.Index(s, end); i >= 0 {
		s = s[:i]
	}
	return strings.Trim(strings.ReplaceAll(s, " ", ""), `"'`)
}

// splitKey splits "key = value" into the key and the trimmed value.
func splitKey(t string) (key, rest string, ok bool) {
	i := strings.IndexByte(t, '=')
	if i <= 0 {
		return "", "", false
	}
	key = strings.TrimSpace(t[:i])
	if q := key[0]; q == '"' || q == '\'' {
		if len(key) < 2 || key[len(key)-1] != q {
			return "", "", false
		}
		key = key[1 : len(key)-1]
	} else {
		for _, r := range key {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' || r == ' ') {
				return "", "", false
			}
		}
		key = strings.ReplaceAll(key, " ", "")
	}
	return key, strings.TrimSpace(t[i+1:]), true
}
