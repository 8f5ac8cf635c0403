// Package values owns the ten Schwartz basic values: their circular order,
// their angles on the circle, the higher-order groups they belong to and the
// defining goals that value prompts are written from.
//
// It is the root of the domain and imports nothing of the project; it must
// never import nats.go, go-openai, client_golang or an adapter package.
package values

import (
	"fmt"
	"math"
	"strings"
)

// Value is one of the ten basic values, numbered in circular order starting
// at Self-Direction. None stands for "no dominant value" (an unprimed
// respondent). It is an int8 so that millions of personas stay compact.
type Value int8

// The ten values in circular order, and None.
const (
	SelfDirection Value = iota
	Stimulation
	Hedonism
	Achievement
	Power
	Security
	Conformity
	Tradition
	Benevolence
	Universalism

	// None is the persona without a dominant value.
	None Value = -1
)

// N is the number of basic values.
const N = 10

// Group is a higher-order value.
type Group int8

// The four higher-order values.
const (
	OpennessToChange Group = iota
	SelfEnhancement
	Conservation
	SelfTranscendence
)

// NGroups is the number of higher-order values.
const NGroups = 4

type info struct {
	code, name, goal, short string
	groups                  []Group
}

// The defining goals follow Schwartz (1992, 2012) as summarised in the
// study's Table of definitions. Hedonism shares elements of Openness to
// Change and Self-Enhancement, so it belongs to both groups.
var table = [N]info{
	{"SD", "Self-Direction", "independent thought and action: choosing, creating, exploring", "being independent and choosing your own path, creating things and exploring", []Group{OpennessToChange}},
	{"ST", "Stimulation", "excitement, novelty and challenge in life", "excitement, novelty and challenge in life", []Group{OpennessToChange}},
	{"HE", "Hedonism", "pleasure and sensuous gratification for oneself", "pleasure and enjoying life's sensuous gratifications for yourself", []Group{OpennessToChange, SelfEnhancement}},
	{"AC", "Achievement", "personal success through demonstrating competence according to social standards", "personal success through showing competence by the standards of society", []Group{SelfEnhancement}},
	{"PO", "Power", "social status and prestige, control or dominance over people and resources", "social status and prestige, and control or dominance over people and resources", []Group{SelfEnhancement}},
	{"SE", "Security", "safety, harmony and stability of society, of relationships and of self", "safety, harmony and stability of society, of your relationships and of yourself", []Group{Conservation}},
	{"CO", "Conformity", "restraint of actions, inclinations and impulses likely to upset or harm others and violate social expectations or norms", "restraining actions and impulses that could upset or harm others or break social expectations and norms", []Group{Conservation}},
	{"TR", "Tradition", "respect, commitment and acceptance of the customs and ideas that one's culture or religion provides", "respect for, commitment to and acceptance of the customs and ideas of your culture or religion", []Group{Conservation}},
	{"BE", "Benevolence", "preserving and enhancing the welfare of those with whom one is in frequent personal contact", "preserving and improving the welfare of the people you are close to and meet often", []Group{SelfTranscendence}},
	{"UN", "Universalism", "understanding, appreciation, tolerance and protection for the welfare of all people and of nature", "understanding, appreciating, tolerating and protecting the welfare of all people and of nature", []Group{SelfTranscendence}},
}

var groupNames = [NGroups][2]string{
	{"OC", "Openness to Change"},
	{"SEN", "Self-Enhancement"},
	{"CON", "Conservation"},
	{"STR", "Self-Transcendence"},
}

// All returns the ten values in circular order.
func All() []Value {
	out := make([]Value, N)
	for i := range out {
		out[i] = Value(i)
	}
	return out
}

// Valid reports whether v is one of the ten values (None is not).
func (v Value) Valid() bool { return v >= 0 && v < N }

// Code is the two-letter code (SD, ST, ...), or "none".
func (v Value) Code() string {
	if !v.Valid() {
		return "none"
	}
	return table[v].code
}

// String returns the code.
func (v Value) String() string { return v.Code() }

// Name is the full English name, or "None".
func (v Value) Name() string {
	if !v.Valid() {
		return "None"
	}
	return table[v].name
}

// Goal is the defining motivational goal in third-person wording.
func (v Value) Goal() string {
	if !v.Valid() {
		return ""
	}
	return table[v].goal
}

// Description is the defining goal worded for a second-person prompt
// ("You value ..."); it keeps the goal's content.
func (v Value) Description() string {
	if !v.Valid() {
		return ""
	}
	return table[v].short
}

// Groups returns the higher-order values v belongs to (two for Hedonism).
func (v Value) Groups() []Group {
	if !v.Valid() {
		return nil
	}
	return table[v].groups
}

// Angle is v's position on the motivational circle in radians, using the
// idealised circumplex with the ten values equally spaced 36 degrees apart
// (the simplification of the theory in which Tradition and Conformity share
// a wedge is not used).
func (v Value) Angle() float64 {
	return float64(v) * 2 * math.Pi / N
}

// Parse accepts a value's code or name, in any case, and "none".
func Parse(s string) (Value, error) {
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "none") {
		return None, nil
	}
	for i, in := range table {
		if strings.EqualFold(t, in.code) || strings.EqualFold(t, in.name) ||
			strings.EqualFold(strings.ReplaceAll(t, " ", "-"), in.name) {
			return Value(i), nil
		}
	}
	return None, fmt.Errorf("unknown value %q (want one of %s or none)", s, strings.Join(Codes(), ", "))
}

// Codes returns the ten codes in circular order.
func Codes() []string {
	out := make([]string, N)
	for i := range table {
		out[i] = table[i].code
	}
	return out
}

// Code is the short code of the higher-order group.
func (g Group) Code() string { return groupNames[g][0] }

// Name is the full name of the higher-order group.
func (g Group) Name() string { return groupNames[g][1] }

// String returns the name.
func (g Group) String() string { return g.Name() }

// Groups returns the four higher-order values.
func Groups() []Group {
	return []Group{OpennessToChange, SelfEnhancement, Conservation, SelfTranscendence}
}
