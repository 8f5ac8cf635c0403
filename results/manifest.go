package results

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/society-sim/society/internal/proc"
)

// Manifest is the file of a results directory that lists the entries the
// run wrote there, one name a line (a folder's with a trailing /), sorted.
// CheckOut reads it to tell an earlier results directory from one that
// also holds the user's own files (notes beside the results), which
// replacing the directory would destroy.
const Manifest = ".society-files"

// writeManifest lists the entries of the results directory dir in its
// Manifest.
func writeManifest(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	var b bytes.Buffer
	for _, e := range entries {
		b.WriteString(entryName(e))
		b.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(dir, Manifest), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	return nil
}

func entryName(e fs.DirEntry) string {
	if e.IsDir() {
		return e.Name() + "/"
	}
	return e.Name()
}

// unlisted returns the entries of the results directory dir that its
// Manifest does not list: files the run did not write. ok is false when
// dir has no readable Manifest (a directory written before manifests
// existed), whose entries cannot be told apart.
func unlisted(dir string) (extra []os.DirEntry, ok bool) {
	raw, err := os.ReadFile(filepath.Join(dir, Manifest))
	if err != nil {
		return nil, false
	}
	var listed []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		listed = append(listed, sc.Text())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, false
	}
	for _, e := range entries {
		if e.Name() != Manifest && !slices.Contains(listed, entryName(e)) {
			extra = append(extra, e)
		}
	}
	return extra, true
}

// partialPrefix begins the name of the folder a results directory named
// base is built in beside it (Write), by process pid on the host of token
// host (hostToken): a folder left by a process that died (kill -9) is
// known by both, so that a results folder shared by several machines is
// cleaned by each of its own folders only.
func partialPrefix(base, host string, pid int) string {
	return "." + base + ".partial-" + host + "-" + strconv.Itoa(pid) + "-"
}

// hostToken is this machine's name as partialPrefix writes it: the
// FNV-1a hash of os.Hostname in hex, or "" when the name is unknown (and
// nothing is cleaned).
func hostToken() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		return ""
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	return fmt.Sprintf("%08x", h.Sum32())
}

// cleanStalePartials removes, in parent, the folders that processes of
// this host (host, from hostToken), now gone, were building results
// directories in (Write): their half-written results, and the earlier
// results they had moved aside to replace, which go back in place when the
// replacement never arrived. Every results directory of parent is looked
// at, not only the one being written (the default directories are new
// for each run, and a killed run's is never written again). Folders of
// other hosts, of live processes, and of any process where that cannot be
// told, are left alone.
func cleanStalePartials(parent, host string) {
	if host == "" {
		return
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		i := strings.LastIndex(name, ".partial-")
		if !e.IsDir() || !strings.HasPrefix(name, ".") || i < 2 {
			continue
		}
		fields := strings.SplitN(name[i+len(".partial-"):], "-", 3)
		if len(fields) != 3 || fields[0] != host {
			continue
		}
		pid, err := strconv.Atoi(fields[1])
		if err != nil || pid <= 0 || proc.Alive(pid) {
			continue
		}
		path, owner := filepath.Join(parent, name), filepath.Join(parent, name[1:i])
		if strings.HasSuffix(name, ".old") {
			// The earlier results, moved aside just before the new
			// ones were to take their place.
			if _, err := os.Lstat(owner); errors.Is(err, fs.ErrNotExist) {
				os.Rename(path, owner)
				continue
			}
		}
		os.RemoveAll(path)
	}
}
