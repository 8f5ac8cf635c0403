package questionnaires

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
)

//go:embed data/*.toml
var data embed.FS

var builtins = sync.OnceValues(func() (map[string]*Instrument, error) {
	files, err := fs.Glob(data, "data/*.toml")
	if err != nil {
		return nil, err
	}
	m := make(map[string]*Instrument, len(files))
	for _, f := range files {
		b, err := data.ReadFile(f)
		if err != nil {
			return nil, err
		}
		in, err := Parse(b, f)
		if err != nil {
			return nil, err
		}
		m[strings.TrimSuffix(path.Base(f), ".toml")] = in
	}
	return m, nil
})

// Names returns the names of the built-in instruments, sorted.
func Names() []string {
	m, _ := builtins()
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Builtin returns a built-in instrument by name. The instrument is parsed
// once and shared by every caller: it is immutable, and callers must not
// modify it (use Clone for a private copy).
func Builtin(name string) (*Instrument, error) {
	m, err := builtins()
	if err != nil {
		return nil, fmt.Errorf("built-in instruments: %w", err)
	}
	in, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("unknown instrument %q (want one of %s)", name, strings.Join(Names(), ", "))
	}
	return in, nil
}

// BuiltinFile returns the TOML source of a built-in instrument, to copy and
// edit into a user instrument.
func BuiltinFile(name string) ([]byte, error) {
	if _, err := Builtin(name); err != nil {
		return nil, err
	}
	return data.ReadFile("data/" + name + ".toml")
}
