package scenarios

import (
	"embed"
	"fmt"
	"path"
	"slices"
	"strings"
)

// The built-in scenarios are plain, commented TOML files: users print one
// with `society scenarios show NAME`, copy it and edit it.
//
//go:embed builtin/*.toml
var builtinFS embed.FS

func builtinFile(name string) ([]byte, bool) {
	if name == "" || strings.ContainsAny(name, `/\.`) {
		return nil, false
	}
	data, err := builtinFS.ReadFile(path.Join("builtin", name+".toml"))
	return data, err == nil
}

// BuiltinNames lists the built-in scenarios in alphabetical order.
func BuiltinNames() []string {
	entries, err := builtinFS.ReadDir("builtin")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".toml"); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// BuiltinSource returns a built-in scenario's TOML file, comments and all.
func BuiltinSource(name string) ([]byte, error) {
	data, ok := builtinFile(name)
	if !ok {
		return nil, fmt.Errorf("built-in scenario %q: %w: no such built-in (want one of %s)", name, ErrInvalid, listNames(BuiltinNames()))
	}
	return data, nil
}

// Builtin parses a built-in scenario.
func Builtin(name string) (*Scenario, error) {
	data, err := BuiltinSource(name)
	if err != nil {
		return nil, err
	}
	return Parse(data, "builtin/"+name+".toml")
}

// Describe returns a built-in scenario's one-line description, or "" when
// there is no such built-in.
func Describe(name string) string {
	s, err := Builtin(name)
	if err != nil {
		return ""
	}
	return s.Description
}
