package results

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// CheckOut decides, before any work, whether the results of scenario name
// may be written at dir. A results directory is written beside dir and
// renamed into place (results.Write), so dir may be:
//   - absent (its parent is created),
//   - an empty directory,
//   - an earlier results directory of the same scenario, which is kept until
//     the new one is complete and then replaced; one that also holds
//     entries its Manifest does not list (the user's own files), or that
//     has no Manifest (written by an older version, or copied without
//     it, where the user's files cannot be told from the results), is
//     refused.
//
// Anything else (a file, a directory holding other things or another
// study's results) would be destroyed, so it is refused unless force is
// set. The parent must be writable: that is where the new directory is
// built. dir must not be a symbolic link, even with force: the results
// would replace the link, not the folder it names, and a dangling link
// would fail the run only once every answer had been paid for. name ""
// accepts an earlier results directory of any scenario (a resumed run
// whose scenario is not known yet). Every error is a refusal that begins
// with dir; its advice names the society command's --force flag, which
// sets force.
func CheckOut(dir, name string, force bool) error {
	if dir == "" {
		return nil
	}
	if li, err := os.Lstat(filepath.Clean(dir)); err == nil && li.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(filepath.Clean(dir))
		return fmt.Errorf("%s: is a symbolic link (to %s); results replace the folder they are written to, so they would replace the link, not what it names (name that folder itself, or a new one)", dir, target)
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("%s: %v", dir, err)
	case force:
	case !st.IsDir():
		return fmt.Errorf("%s: is a file, not a directory; it would be replaced (name a new directory, or pass --force to replace it)", dir)
	default:
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("%s: %v", dir, err)
		}
		if len(entries) > 0 {
			prev, ok := DirScenario(dir)
			switch {
			case !ok:
				return fmt.Errorf("%s: not empty and not a results directory (it holds %s); its contents would be replaced (name a new directory, or pass --force to replace it)",
					dir, listSome(entries))
			case name != "" && prev != name:
				return fmt.Errorf("%s: holds the results of scenario %q, not %q; they would be replaced (name a new directory, or pass --force to replace them)",
					dir, prev, name)
			}
			extra, listed := unlisted(dir)
			switch {
			case !listed:
				return fmt.Errorf("%s: holds earlier results of %q without the list of the files the run wrote (%s: written by an older version, or copied without it), so files of yours in it cannot be told from the results; replacing them could delete yours (name a new directory, or pass --force to replace it)",
					dir, prev, Manifest)
			case len(extra) > 0:
				return fmt.Errorf("%s: holds earlier results of %q and %s, which the run did not write; replacing the results would delete them (move them out, name a new directory, or pass --force)",
					dir, prev, listSome(extra))
			}
		}
	}
	parent := filepath.Dir(filepath.Clean(dir))
	// The folders made for the probe are removed again: a run that fails
	// before writing leaves no empty results/ behind (the writer makes
	// them when it has something to write).
	made := missingAncestors(parent)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("%s: %v", dir, err)
	}
	probe, err := os.MkdirTemp(parent, ".society-probe-")
	defer func() {
		for _, d := range made { // innermost first
			os.Remove(d)
		}
	}()
	if err != nil {
		return fmt.Errorf("%s: cannot write in %s: %v", dir, parent, err)
	}
	os.Remove(probe)
	return nil
}

// CheckRebuild decides, before any work, whether the rebuild of the
// results directory from may be written at out ("society report FROM
// --out OUT", out not from): from must hold a readable scenario.toml
// (ErrBadInput otherwise), and out is checked as CheckOut does for that
// scenario. A rebuild writes from's answers at out, so any results there,
// even of the same scenario (another run, another model, paid calls),
// would be lost: unless force is set, only a new or empty directory is
// taken. Errors other than ErrBadInput are refusals that begin with out.
func CheckRebuild(from, out string, force bool) error {
	name, ok := StoredScenarioName(from)
	if !ok {
		return fmt.Errorf("%w: %s is not a results directory (no readable scenario.toml)", ErrBadInput, from)
	}
	if err := CheckOut(out, name, force); err != nil {
		return err
	}
	if prev, ok := DirScenario(out); ok && !force {
		return fmt.Errorf("%s: holds the results of a run of %q, which a rebuild of %s would replace (name a new directory, or pass --force to replace them)",
			out, prev, from)
	}
	return nil
}

// missingAncestors lists dir and those of its ancestors that do not exist
// yet, innermost first.
func missingAncestors(dir string) []string {
	var out []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return out
		}
		out = append(out, d)
		if filepath.Dir(d) == d {
			return out
		}
	}
}

// DirScenario reports the scenario name of the results directory dir: one
// that holds the results.json and scenario.toml a run writes. ok is false
// for anything else.
func DirScenario(dir string) (string, bool) {
	if _, err := os.Stat(filepath.Join(dir, "results.json")); err != nil {
		return "", false
	}
	return StoredScenarioName(dir)
}

// StoredScenarioName reads the name of the scenario kept in dir's
// scenario.toml; ok is false when it is missing, unreadable or unnamed.
func StoredScenarioName(dir string) (string, bool) {
	f, err := os.Open(filepath.Join(dir, "scenario.toml"))
	if err != nil {
		return "", false
	}
	defer f.Close()
	var sc struct {
		Name string `toml:"name"`
	}
	if _, err := toml.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&sc); err != nil || sc.Name == "" {
		return "", false
	}
	return sc.Name, true
}

func listSome(entries []os.DirEntry) string {
	var names []string
	for i, e := range entries {
		if i == 3 {
			names = append(names, fmt.Sprintf("and %d more", len(entries)-3))
			break
		}
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		names = append(names, n)
	}
	return strings.Join(names, ", ")
}

// DefaultOut is the results directory of a run with id given no other:
// results/ID, relative to the working directory. A single-process run's id
// (sim.NewRunID: NAME-SEED-TIME-RANDOM) is unique, so runs started within
// the same second (a seed sweep) never share, and so replace, a directory,
// and the directory names the run its metrics and results.json label.
func DefaultOut(id string) string {
	return filepath.Join("results", id)
}
