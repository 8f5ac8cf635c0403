package agent

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/society-sim/society/questionnaires"
)

// Prompt is a rendered chat prompt. System carries the value prefix, which
// is the same for every question a persona asks: servers with prefix caching
// (vLLM, SGLang) then reuse its computation across all items.
type Prompt struct {
	System string
	User   string
}

// Prefix is the value-priming text of a persona, written from the value's
// defining goal (StyleDescription) or its name only (StyleName). It is empty
// for StyleNone and for personas without a dominant value.
func Prefix(p Persona) string {
	if !p.Value.Valid() {
		return ""
	}
	switch p.Style {
	case StyleNone, StyleTest:
		return ""
	case StyleName:
		return fmt.Sprintf("Imagine you are someone for whom %s matters more than anything else.",
			strings.ToLower(p.Value.Name()))
	default:
		return fmt.Sprintf("Imagine you are someone for whom %s matters more than anything else. "+
			"What you care about most is %s.", strings.ToLower(p.Value.Name()), p.Value.Description())
	}
}

// StyleTest conveys the persona's value by a test it filled in earlier
// (the study's "Test Only" priming): no prefix, and the question's Context
// shows the filled-in questionnaire. Unlike StyleNone the persona keeps its
// value, so backends that model people rather than read text (the synthetic
// respondents) can answer as that persona. It is set by the run for models
// with priming "test", never written in a scenario.
const StyleTest Style = "test"

// Instruction is the answer instruction for an instrument's scale, naming
// every label so that the model can answer with the number or the words.
func Instruction(in *questionnaires.Instrument) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Answer with a single number from %d to %d, where ", in.Scale.Min, in.Scale.Max)
	for x := in.Scale.Min; x <= in.Scale.Max; x++ {
		if x > in.Scale.Min {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(x))
		b.WriteString(" = ")
		b.WriteString(in.Scale.Label(x))
	}
	b.WriteString(". Reply with the number only.")
	return b.String()
}

// StrictInstruction is the instruction used when a first answer could not
// be parsed.
func StrictInstruction(in *questionnaires.Instrument) string {
	return fmt.Sprintf("Your previous reply could not be read. Reply with exactly one digit from %d to %d and nothing else.",
		in.Scale.Min, in.Scale.Max)
}

// Render builds the prompt of a question. The order is fixed (prefix,
// context, instrument instruction, item, answer instruction) so that prompts
// sharing a persona share the longest possible prefix.
func Render(q *Question) Prompt {
	in := q.Instrument
	var u strings.Builder
	if q.Context != "" {
		u.WriteString(q.Context)
		u.WriteString("\n\n")
	}
	if in.Instruction != "" {
		u.WriteString(in.Instruction)
		u.WriteString("\n\n")
	}
	u.WriteString(in.Items[q.Item].Text)
	u.WriteString("\n\n")
	u.WriteString(Instruction(in))
	return Prompt{System: Prefix(q.Persona), User: u.String()}
}

// TestContext renders a questionnaire filled in earlier as the context of
// the study's "Test" priming: the instrument's instruction, then every
// answered item with its answer's number and label. answers[i] answers
// in.Items[i]; an answer off the scale leaves its item out. The text
// depends only on its inputs, so every agent of a persona shares it and
// server prefix caches and the response cache hit.
func TestContext(in *questionnaires.Instrument, answers []int) string {
	var b strings.Builder
	b.WriteString("Earlier, you filled in the questionnaire below. Your answers describe who you are; answer the next question as the same person.\n\n")
	if in.Instruction != "" {
		b.WriteString(in.Instruction)
		b.WriteString("\n\n")
	}
	for i, x := range answers {
		if i >= len(in.Items) || !in.Scale.Valid(x) {
			continue
		}
		fmt.Fprintf(&b, "%d. %s\n   Your answer: %d (%s)\n", in.Items[i].ID, in.Items[i].Text, x, in.Scale.Label(x))
	}
	return strings.TrimRight(b.String(), "\n")
}

// CompletionPrompt is p as one text for a completions endpoint (no chat
// template): the value prefix first, so that prefix caches hit, then the
// user text, ending where the answer goes. It is the prompt the
// OpenAI-compatible client sends to /completions.
func CompletionPrompt(p Prompt) string {
	if p.System == "" {
		return p.User + "\n\nAnswer:"
	}
	return p.System + "\n\n" + p.User + "\n\nAnswer:"
}
