package questionnaires

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// PersonaCommit is the commit of github.com/anthropics/evals whose persona/
// folder the project reads (2023-01-03): downloads are pinned to it so that
// every run asks the same statements.
const PersonaCommit = "84fcc677e52e1902d696c32cd1a6b663e70d3993"

// PersonaURL is where FetchPersona downloads a behaviour's file from:
// PersonaURL + "/" + name + ".jsonl".
const PersonaURL = "https://raw.githubusercontent.com/anthropics/evals/" + PersonaCommit + "/persona"

// PersonaDirEnv names the environment variable that points at a directory
// of persona files when a scenario gives none.
const PersonaDirEnv = "SOCIETY_PERSONA_DIR"

// maxPersonaFile bounds one downloaded file: the largest of the data set
// is under 1 MB, so anything far larger is not a behaviour file.
const maxPersonaFile = 16 << 20

// PersonaCacheDir is where downloads are kept: the user's cache directory,
// under society/persona/ and the commit, so a later run finds them.
func PersonaCacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("persona statements: cache directory: %w", err)
	}
	return filepath.Join(base, "society", "persona", PersonaCommit[:12]), nil
}

// FindPersonaDir returns the first directory that holds persona files:
// configured (a scenario's dir) when set, else $SOCIETY_PERSONA_DIR, else the
// download cache. With configured set only it is considered, so a typo is
// not papered over by another copy. ok is false when none is there.
func FindPersonaDir(configured string) (dir string, ok bool) {
	candidates := []string{configured}
	if configured == "" {
		candidates = []string{os.Getenv(PersonaDirEnv)}
		if c, err := PersonaCacheDir(); err == nil {
			candidates = append(candidates, c)
		}
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if bs, err := DirBehaviors(c); err == nil && len(bs) > 0 {
			return c, true
		}
	}
	if configured != "" {
		return configured, false
	}
	return "", false
}

// FetchPersona downloads the behaviours' files that dir lacks from base
// (PersonaURL in production; a test server in tests), checking that each
// parses before it is kept, and writes them atomically so that an
// interrupted download leaves no half file. No behaviours means all 135.
func FetchPersona(ctx context.Context, client *http.Client, base, dir string, behaviors []string) error {
	if len(behaviors) == 0 {
		behaviors = personaBehaviors
	}
	if client == nil {
		client = http.DefaultClient
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("persona statements: %w", err)
	}
	base = strings.TrimRight(base, "/")
	for _, b := range behaviors {
		if !ValidBehaviorName(b) {
			return fmt.Errorf("persona statements: %q is not a behaviour name", b)
		}
		path := filepath.Join(dir, b+".jsonl")
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if err := fetchOne(ctx, client, base+"/"+b+".jsonl", path, b); err != nil {
			return err
		}
	}
	return nil
}

func fetchOne(ctx context.Context, client *http.Client, url, path, behavior string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("download %s: unknown behaviour %q (404 not found)", url, behavior)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("download %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxPersonaFile+1))
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	if len(data) > maxPersonaFile {
		return fmt.Errorf("download %s: larger than %d bytes, not a behaviour file", url, maxPersonaFile)
	}
	if _, err := ReadPersona(bytes.NewReader(data), url, behavior); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-")
	if err != nil {
		return fmt.Errorf("persona statements: %w", err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("persona statements: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("persona statements: %w", err)
	}
	return nil
}
