package llm

import (
	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/values"
)

// allPersonas lists every persona of a style: the ten values and
// values.None.
func allPersonas(style agent.Style) []agent.Persona {
	out := make([]agent.Persona, 0, values.N+1)
	for _, v := range values.All() {
		out = append(out, agent.Persona{Value: v, Style: style})
	}
	return append(out, agent.Persona{Value: values.None, Style: style})
}
