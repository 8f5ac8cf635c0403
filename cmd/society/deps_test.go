package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDomainDependencies keeps the layout honest without review: domain
// packages never reach NATS, the OpenAI client, Prometheus or an adapter
// package, and adapters never import each other.
func TestDomainDependencies(t *testing.T) {
	const mod = "github.com/society-sim/society/"
	domain := []string{"values", "questionnaires", "population", "agent", "games", "scenarios", "analysis", "sim"}
	forbiddenForDomain := []string{
		"github.com/nats-io/",
		"github.com/sashabaranov/go-openai",
		"github.com/prometheus/",
		mod + "bus", mod + "llm", mod + "metrics", mod + "cmd/",
	}
	adapters := []string{"bus", "llm", "metrics"}
	cases := []struct {
		pkg       string
		forbidden []string
	}{}
	for _, d := range domain {
		cases = append(cases, struct {
			pkg       string
			forbidden []string
		}{d, forbiddenForDomain})
	}
	for _, a := range adapters {
		var f []string
		for _, other := range adapters {
			if other != a {
				f = append(f, mod+other)
			}
		}
		cases = append(cases, struct {
			pkg       string
			forbidden []string
		}{a, f})
	}
	for _, c := range cases {
		t.Run(c.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../"+c.pkg).CombinedOutput()
			if err != nil {
				if strings.Contains(string(out), "no Go files") || strings.Contains(string(out), "cannot find") {
					t.Skipf("%s has no Go files yet", c.pkg)
				}
				t.Fatalf("go list %s: %v\n%s", c.pkg, err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, f := range c.forbidden {
					if strings.HasPrefix(dep, f) || dep == strings.TrimSuffix(f, "/") {
						t.Errorf("%s depends on %s, which it must not", c.pkg, dep)
					}
				}
			}
		})
	}
}
