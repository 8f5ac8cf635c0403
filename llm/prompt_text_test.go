package llm

import (
	"testing"

	"github.com/society-sim/society/agent"
)

// The completions prompt a client sends is the one prompts.csv records
// (agent.CompletionPrompt): one format, whichever writes it.
func TestCompletionPromptIsAgents(t *testing.T) {
	for _, p := range []agent.Prompt{
		{User: "How much do you agree?"},
		{System: "Imagine you are someone for whom power matters more than anything else.", User: "Q\n\nAnswer with a single number."},
	} {
		if got, want := completionPrompt(p), agent.CompletionPrompt(p); got != want {
			t.Errorf("completionPrompt = %q, want agent.CompletionPrompt's %q", got, want)
		}
	}
}
