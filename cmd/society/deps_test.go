package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/society-sim/society/"

// domain are the packages the simulator is made of. sim is listed before
// it exists so that the rules hold for it from its first commit; a package
// that does not exist yet is skipped.
var domain = []string{"values", "questionnaires", "population", "agent", "games", "scenarios", "analysis", "results", "sim"}

// adapters each wrap one outside dependency.
var adapters = []string{"bus", "llm", "metrics", "progress"}

// depRule bans every package under each of banned (an import path, or a
// module path prefix ending in "/") from the dependencies of pkgs, for why.
type depRule struct {
	pkgs   []string
	banned []string
	why    string
}

func depRules() []depRule {
	rules := []depRule{
		{domain, []string{"github.com/nats-io/"},
			"domain packages never import NATS: the simulation must run without a bus"},
		{domain, []string{"github.com/sashabaranov/go-openai"},
			"domain packages never import the OpenAI client: they ask models through agent.Model, whatever serves them"},
		{domain, []string{"github.com/prometheus/"},
			"domain packages never import Prometheus: they are observed through ports, and compute without a registry"},
		{domain, []string{module + "bus", module + "llm", module + "metrics", module + "progress"},
			"domain packages never import an adapter: adapters implement the domain's ports, never the reverse"},
		{append(slices.Clone(domain), adapters...), []string{module + "cmd/"},
			"only cmd/society wires packages together; nothing imports a command"},
		{[]string{"values", "questionnaires", "population", "agent", "games", "scenarios", "analysis"}, []string{module + "results"},
			"the results directory lays out the numbers; nothing that computes them may depend on how they are shown"},
		{[]string{"llm"}, []string{module + "analysis", module + "results"},
			"the synthetic respondents answer from the instruments' theory templates, not from the analysis that scores them"},
		{[]string{"llm/modelserver"}, []string{module + "llm"},
			"llm's own tests run their client against the model server: it declares the port it answers from instead"},
		{[]string{"bus/busbench"}, []string{module + "llm", module + "metrics"},
			"a bench harness measures its one adapter, so it imports no other"},
		{[]string{"llm/llmbench"}, []string{module + "bus", module + "metrics"},
			"a bench harness measures its one adapter, so it imports no other"},
		{[]string{"llm/backend"}, []string{module + "bus", module + "metrics", "github.com/nats-io/", "github.com/prometheus/"},
			"the model backends are llm's side of sim.Backends: a bus or metrics need is the caller's, wired in cmd/society"},
		{[]string{"sim/simbench"}, []string{module + "bus", module + "llm", module + "metrics", "github.com/nats-io/", "github.com/sashabaranov/go-openai", "github.com/prometheus/"},
			"the whole-run harness measures the engine its caller wires, so it imports no adapter"},
		{[]string{"llm/modelserver"}, []string{module + "bus", module + "metrics", "github.com/nats-io/", "github.com/prometheus/"},
			"the model server is an HTTP test double: it needs no bus and no metrics"},
		{[]string{"progress"}, []string{"github.com/nats-io/", "github.com/sashabaranov/go-openai", "github.com/prometheus/"},
			"the progress display reads the counts the engine hands its observers: it needs no bus, no model client and no metrics"},
	}
	for _, a := range adapters {
		var others []string
		for _, b := range adapters {
			if b != a {
				others = append(others, module+b)
			}
		}
		rules = append(rules, depRule{[]string{a}, others,
			"adapters never import each other: only cmd/society wires them, so each can be replaced alone"})
	}
	return rules
}

// listed is what one `go list -json` call says about a package.
type listed struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Deps       []string
}

// listModule lists every package of the module, with its transitive
// dependencies, in one go list call.
func listModule(t *testing.T) map[string]listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Dir,GoFiles,Deps", "./...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string]listed{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module)] = p
	}
	return pkgs
}

// bannedBy reports whether dep falls under ban: the package itself or one
// below it, or anything under a prefix ending in "/".
func bannedBy(dep, ban string) bool {
	if strings.HasSuffix(ban, "/") {
		return strings.HasPrefix(dep, ban)
	}
	return dep == ban || strings.HasPrefix(dep, ban+"/")
}

// TestDomainDependencies keeps the layout honest without review: each rule
// bans some imports from some packages, and says why.
func TestDomainDependencies(t *testing.T) {
	pkgs := listModule(t)
	for _, r := range depRules() {
		for _, name := range r.pkgs {
			p, ok := pkgs[name]
			if !ok {
				continue // not written yet
			}
			for _, dep := range p.Deps {
				for _, ban := range r.banned {
					if bannedBy(dep, ban) {
						t.Errorf("%s depends on %s, which it must not: %s", name, dep, r.why)
					}
				}
			}
		}
	}
	for _, name := range []string{"values", "analysis", "results", "bus", "llm", "llm/modelserver", "metrics", "progress"} {
		if _, ok := pkgs[name]; !ok {
			t.Errorf("go list: no package %s; the rules above would check nothing", name)
		}
	}
}

// TestPackageDocs: every package says in its doc comment what it owns and
// what it must not import, so a newcomer knows the room before entering.
func TestPackageDocs(t *testing.T) {
	for name, p := range listModule(t) {
		var doc string
		for _, f := range p.GoFiles {
			file, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if file.Doc != nil {
				doc += file.Doc.Text()
			}
		}
		switch {
		case doc == "":
			t.Errorf("%s: no package doc comment", name)
		case !strings.Contains(doc, "import"):
			t.Errorf("%s: the package doc does not say what the package must not import", name)
		}
	}
}
