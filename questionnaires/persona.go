package questionnaires

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// The persona statements of Perez et al. (2023), "Discovering Language Model
// Behaviors with Model-Written Evaluations" (arXiv:2212.09251, CC-BY-4.0):
// for each of 135 behaviours, about a thousand statements a person with (or
// without) the behaviour would make, each asked as "Is the following
// statement something you would say?". The data set is not part of this
// project: LoadPersona reads its jsonl files from a directory, and
// FetchPersona downloads them into one.
//
// As an instrument, the statements are yes/no items on a 0..1 scale
// (0 "No", 1 "Yes"), keyed by behaviour; an item whose matching answer is
// "No" is reverse-keyed, so that a behaviour's score (the mean recoded
// answer) is the share of answers that match the behaviour: the study's
// "% agreement".

// PersonaName is the instrument name of the persona statements.
const PersonaName = "persona"

// PersonaCitation cites the data set in every output that uses it.
const PersonaCitation = "Perez, E., et al. (2023). Discovering Language Model Behaviors with Model-Written Evaluations. Findings of ACL 2023 (arXiv:2212.09251). Data: github.com/anthropics/evals, persona/, CC-BY-4.0."

// PersonaStatement is one line of a behaviour's jsonl file.
type PersonaStatement struct {
	Behavior string
	// Question is the item as asked (the file's "question").
	Question string
	// Statement is the bare statement.
	Statement string
	// MatchingYes is true when answering "Yes" matches the behaviour.
	MatchingYes bool
	// LabelConfidence is the data set's confidence in the label (0–1).
	LabelConfidence float64
	// Line is the statement's line in its file.
	Line int
}

// PersonaBehaviors returns the names of the data set's 135 behaviours in
// byte order.
func PersonaBehaviors() []string { return slices.Clone(personaBehaviors) }

// KnownPersonaBehavior reports whether name is one of the data set's
// behaviours.
func KnownPersonaBehavior(name string) bool {
	_, ok := slices.BinarySearch(personaBehaviors, name)
	return ok
}

// behaviorName is what a behaviour file may be called: it becomes a path
// and a URL, so nothing that could leave the directory.
var behaviorName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// ValidBehaviorName reports whether name can name a behaviour file.
func ValidBehaviorName(name string) bool { return behaviorName.MatchString(name) }

type personaLine struct {
	Question        *string  `json:"question"`
	Statement       *string  `json:"statement"`
	Matching        *string  `json:"answer_matching_behavior"`
	NotMatching     *string  `json:"answer_not_matching_behavior"`
	LabelConfidence *float64 `json:"label_confidence"`
}

// maxPersonaErrors bounds the problems reported per file: a file that is
// not jsonl at all would otherwise give one per line.
const maxPersonaErrors = 10

// ReadPersona parses a behaviour's jsonl file: one JSON object per line
// with "question", "statement", "answer_matching_behavior" (" Yes" or
// " No"), "answer_not_matching_behavior" (the other) and, optionally,
// "label_confidence" (0–1). Blank lines are skipped. Every problem is
// reported, as "source:line: message", up to ten per file.
func ReadPersona(r io.Reader, source, behavior string) ([]PersonaStatement, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []PersonaStatement
	var errs []error
	fail := func(line int, format string, args ...any) {
		if len(errs) < maxPersonaErrors {
			errs = append(errs, fmt.Errorf("%s:%d: %s", source, line, fmt.Sprintf(format, args...)))
		} else if len(errs) == maxPersonaErrors {
			errs = append(errs, fmt.Errorf("%s: more problems after line %d not shown", source, line))
		}
	}
	for line := 1; ; line++ {
		text, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(text)) > 0 {
			if st, msg := parsePersonaLine(text); msg != "" {
				fail(line, "%s", msg)
			} else {
				st.Behavior, st.Line = behavior, line
				out = append(out, st)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, line, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s:1: no statements", source)
	}
	return out, nil
}

func parsePersonaLine(text []byte) (PersonaStatement, string) {
	var pl personaLine
	if err := json.Unmarshal(text, &pl); err != nil {
		return PersonaStatement{}, "not a JSON object: " + err.Error()
	}
	var missing []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"question", pl.Question != nil}, {"statement", pl.Statement != nil},
		{"answer_matching_behavior", pl.Matching != nil}, {"answer_not_matching_behavior", pl.NotMatching != nil}} {
		if !f.set {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return PersonaStatement{}, "missing " + strings.Join(missing, ", ")
	}
	st := PersonaStatement{Question: strings.TrimSpace(*pl.Question), Statement: strings.TrimSpace(*pl.Statement), LabelConfidence: math.NaN()}
	if st.Question == "" {
		return st, "question is empty"
	}
	yes, ok := yesNo(*pl.Matching)
	if !ok {
		return st, fmt.Sprintf("answer_matching_behavior is %q, want \" Yes\" or \" No\"", *pl.Matching)
	}
	if other, ok := yesNo(*pl.NotMatching); !ok || other == yes {
		return st, fmt.Sprintf("answer_not_matching_behavior is %q, want the opposite of answer_matching_behavior %q", *pl.NotMatching, *pl.Matching)
	}
	st.MatchingYes = yes
	if c := pl.LabelConfidence; c != nil {
		if *c < 0 || *c > 1 {
			return st, fmt.Sprintf("label_confidence is %v, want a number from 0 to 1", *c)
		}
		st.LabelConfidence = *c
	}
	return st, ""
}

func yesNo(s string) (yes, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes":
		return true, true
	case "no":
		return false, true
	}
	return false, false
}

// PersonaOptions select statements from the data set.
type PersonaOptions struct {
	// Dir holds the behaviour files, <behaviour>.jsonl.
	Dir string
	// Behaviors to ask about; empty means every .jsonl file in Dir, in
	// byte order.
	Behaviors []string
	// Statements per behaviour (K). The sample is balanced: half whose
	// matching answer is "Yes", half "No" (the larger half Yes when K is
	// odd), topped up from the other kind when one runs short. K at or
	// above a behaviour's statement count keeps them all.
	Statements int
	// Seed draws the sample; each behaviour has its own stream, so adding a
	// behaviour does not change the others' statements.
	Seed uint64
}

// DirBehaviors lists the behaviours of a directory: its .jsonl files, in
// byte order.
func DirBehaviors(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("persona statements: %w", err)
	}
	var out []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".jsonl"); ok && !e.IsDir() && ValidBehaviorName(name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("persona statements: %s has no <behaviour>.jsonl files", dir)
	}
	return out, nil
}

// LoadPersona reads the selected behaviours' files and samples K statements
// from each, as a yes/no instrument named "persona" whose items are grouped
// by behaviour in the order given. An unknown behaviour (no file in Dir) is
// an error naming the file it looked for; a malformed line is an error
// naming its file and line. Every problem is reported at once.
func LoadPersona(o PersonaOptions) (*Instrument, error) {
	if o.Statements < 1 {
		return nil, fmt.Errorf("persona statements: want at least 1 statement per behaviour, got %d", o.Statements)
	}
	behaviors := o.Behaviors
	if len(behaviors) == 0 {
		var err error
		if behaviors, err = DirBehaviors(o.Dir); err != nil {
			return nil, err
		}
	}
	var errs []error
	var items []Item
	seen := map[string]bool{}
	for _, b := range behaviors {
		if seen[b] {
			errs = append(errs, fmt.Errorf("persona statements: behaviour %q is listed twice", b))
			continue
		}
		seen[b] = true
		if !ValidBehaviorName(b) {
			errs = append(errs, fmt.Errorf("persona statements: %q is not a behaviour name (letters, digits, '-' and '_')", b))
			continue
		}
		path := filepath.Join(o.Dir, b+".jsonl")
		f, err := os.Open(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("%s: unknown behaviour %q: no such file in %s", path, b, o.Dir))
			} else {
				errs = append(errs, fmt.Errorf("persona statements: %w", err))
			}
			continue
		}
		sts, err := ReadPersona(f, path, b)
		f.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, st := range SamplePersona(sts, o.Statements, o.Seed) {
			items = append(items, Item{ID: len(items) + 1, Text: st.Question, Key: b, Reverse: !st.MatchingYes})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	in := &Instrument{
		Name:        PersonaName,
		Title:       "Persona statements (Perez et al. 2023)",
		Citation:    PersonaCitation,
		Kind:        KindBehaviour,
		Instruction: "Answer as yourself.",
		Scale:       Scale{Min: 0, Max: 1, Labels: []string{"No", "Yes"}},
		Items:       items,
	}
	if err := in.Validate(); err != nil {
		return nil, fmt.Errorf("persona statements: %w", err)
	}
	return in, nil
}

// SamplePersona draws k statements of one behaviour, balanced between the
// two matching answers (see PersonaOptions.Statements), and returns them in
// file order. The draw depends only on the statements, k, seed and the
// behaviour's name.
func SamplePersona(sts []PersonaStatement, k int, seed uint64) []PersonaStatement {
	if k >= len(sts) {
		return slices.Clone(sts)
	}
	var yes, no []PersonaStatement
	for _, st := range sts {
		if st.MatchingYes {
			yes = append(yes, st)
		} else {
			no = append(no, st)
		}
	}
	var name string
	if len(sts) > 0 {
		name = sts[0].Behavior
	}
	rng := rand.New(rand.NewPCG(seed, fnv64(name)))
	rng.Shuffle(len(yes), func(i, j int) { yes[i], yes[j] = yes[j], yes[i] })
	rng.Shuffle(len(no), func(i, j int) { no[i], no[j] = no[j], no[i] })
	ny := min((k+1)/2, len(yes))
	nn := min(k-ny, len(no))
	ny = min(k-nn, len(yes))
	out := append(append([]PersonaStatement(nil), yes[:ny]...), no[:nn]...)
	slices.SortFunc(out, func(a, b PersonaStatement) int { return a.Line - b.Line })
	return out
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
