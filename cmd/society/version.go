package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/society-sim/society/analysis"
)

// Set at build time for a release (README, "Versions"):
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.revision=$(git rev-parse HEAD) -X main.buildTime=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ./cmd/society
//
// Left empty, they come from the build information the Go toolchain
// records (analysis.ProgramBuild).
var (
	version   string
	revision  string
	buildTime string
)

// programVersion identifies the running program, the -ldflags values first.
func programVersion() analysis.Build { return analysis.ProgramBuild(version, revision, buildTime) }

// versionLine is the line `society --version` prints.
func versionLine(v analysis.Build) string {
	b := &strings.Builder{}
	fmt.Fprintf(b, "society %s, revision %s", v.Version, v.Revision)
	if v.Modified {
		b.WriteString(" (modified: built with uncommitted changes)")
	}
	if v.CommitTime != "" {
		fmt.Fprintf(b, ", committed %s", v.CommitTime)
	}
	if v.Time != "" {
		fmt.Fprintf(b, ", built %s", v.Time)
	}
	if v.GoVersion != "" {
		fmt.Fprintf(b, ", %s", v.GoVersion)
	}
	if v.Revision == analysis.UnknownRevision {
		b.WriteString("\n(no VCS revision recorded: built with go run, outside a git tree or with -buildvcs=false (see GOFLAGS); " +
			"build with go build -buildvcs=true in the repository, or set -ldflags \"-X main.revision=...\")")
	}
	return b.String()
}

func cmdVersion(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: version takes no arguments", errUsage)
	}
	fmt.Fprintln(stdout, versionLine(programVersion()))
	return nil
}
