package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// Set at build time for a release (README, "Versions"):
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.revision=$(git rev-parse HEAD) -X main.buildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/society
//
// Left empty, they come from the build information the Go toolchain
// records: go build in a git tree records the revision, whether the tree
// had uncommitted changes and the commit time; go run records none unless
// given -buildvcs=true.
var (
	version   string
	revision  string
	buildTime string
)

// buildVersion identifies the running program.
type buildVersion struct {
	Version  string // a release's version, the module's, or "devel"
	Revision string // VCS revision, "unknown" when the build recorded none
	Modified bool   // built from a tree with uncommitted changes
	// Time is the release's build time, or the revision's commit time.
	Time      string
	GoVersion string
}

// programVersion reads the build information, the -ldflags values first.
func programVersion() buildVersion {
	v := buildVersion{Version: "devel", Revision: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.GoVersion = bi.GoVersion
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			v.Version = mv
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			case "vcs.time":
				v.Time = s.Value
			}
		}
	}
	if version != "" {
		v.Version = version
	}
	if revision != "" {
		v.Revision = revision
	}
	if buildTime != "" {
		v.Time = buildTime
	}
	return v
}

// String is the line `society --version` prints.
func (v buildVersion) String() string {
	b := &strings.Builder{}
	fmt.Fprintf(b, "society %s, revision %s", v.Version, v.Revision)
	if v.Modified {
		b.WriteString(" (modified: built with uncommitted changes)")
	}
	if v.Time != "" {
		fmt.Fprintf(b, ", %s", v.Time)
	}
	if v.GoVersion != "" {
		fmt.Fprintf(b, ", %s", v.GoVersion)
	}
	if v.Revision == "unknown" {
		b.WriteString("\n(no VCS revision recorded: built with go run or outside a git tree; " +
			"build with go build in the repository, or set -ldflags \"-X main.revision=...\")")
	}
	return b.String()
}

func cmdVersion(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: version takes no arguments", errUsage)
	}
	fmt.Fprintln(stdout, programVersion())
	return nil
}
