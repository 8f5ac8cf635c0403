// Package scenarios owns the scenario file: the TOML schema a study is
// written in, its strict decoding (unknown keys are errors), validation that
// reports every problem at once with file, line and field, the defaults, and
// the built-in scenarios users copy and edit.
//
// It is a domain package: it may import values, population, questionnaires,
// agent and games, and must never import nats.go, go-openai, client_golang or an
// adapter package (bus, llm, metrics).
package scenarios

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
)

// ErrInvalid is wrapped by every error about a scenario's content or
// syntax, so that callers can tell bad input from a failed run.
var ErrInvalid = errors.New("invalid scenario")

// Problem is one thing wrong with a scenario, located by file, line (0 when
// unknown) and field path ("models[1].mode"; empty for syntax errors).
type Problem struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (p *Problem) Error() string {
	var b bytes.Buffer
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Unwrap makes every problem an ErrInvalid.
func (p *Problem) Unwrap() error { return ErrInvalid }

// Limits of the schema. The population limit keeps a run's agent pool (a
// persona byte and a rank per agent, plus per-agent scores) within the
// memory of one large machine.
const (
	MaxSize        = 50_000_000
	MaxSamples     = 100_000
	MaxConcurrency = 100_000
	MaxItems       = 100_000
	MaxShards      = 4096
	MaxBootstrap   = 1_000_000
	// MaxFileBytes is the largest scenario file read (the built-ins are
	// under 20 KB); see questionnaires.MaxNesting for the nesting limit.
	MaxFileBytes = 1 << 20
)

// Defaults applied when a key is absent.
const (
	DefaultSeed        = 1
	DefaultSize        = 1000
	DefaultStrategy    = population.HNP
	DefaultTemperature = 1.0
	DefaultSamples     = 50
	DefaultConcurrency = 64
	DefaultTimeout     = 60 * time.Second
	// DefaultIterations is the number of whole-population bootstrap
	// resamples; DefaultPaperIterations and DefaultBootstrap are the
	// study's (App. G: 100 resamples of 500 agents), used with
	// bootstrap = "paper".
	DefaultIterations      = 1000
	DefaultPaperIterations = 100
	DefaultBootstrap       = 500
	// DefaultNullIterations is the number of permutations of the null
	// distribution: p-values resolve down to 1/1000.
	DefaultNullIterations = 999
	DefaultInstrument     = "pvq40"
)

// MDS names a multidimensional scaling method of the Values Similarity
// (analysis.MDSMethod).
type MDS string

// The MDS methods.
const (
	// MDSClassical is classical (Torgerson) scaling, the study's method.
	MDSClassical MDS = "classical"
	// MDSSMACOF is metric SMACOF on the same dissimilarities.
	MDSSMACOF MDS = "smacof"
)

// Sampling is how a population size is turned into persona counts.
type Sampling string

const (
	// Stratified apportions the size exactly (population.Counts).
	Stratified Sampling = "stratified"
	// Random draws every agent's persona independently (population.Draw).
	Random Sampling = "random"
)

// Backend is the kind of model server.
type Backend string

const (
	// Synthetic is the built-in psychometric respondent model.
	Synthetic Backend = "synthetic"
	// OpenAI is any OpenAI-compatible HTTP endpoint.
	OpenAI Backend = "openai"
)

// Mode is how answers are obtained from a model.
type Mode string

const (
	// Distribution asks once per distinct prompt for the answer
	// probabilities and lets agents draw from them.
	Distribution Mode = "distribution"
	// Sample asks for one completion per answer, as the study did.
	Sample Mode = "sample"
)

// OpenAI-compatible endpoints.
const (
	EndpointChat        = "chat"
	EndpointCompletions = "completions"
)

// Priming is how a persona's value is conveyed before the questions.
type Priming string

const (
	// PrimingOnly puts the value prompt before the questions.
	PrimingOnly Priming = "priming"
	// TestOnly shows a PVQ filled in by a value-prompted model instead.
	TestOnly Priming = "test"
	// PrimingAndTest does both.
	PrimingAndTest Priming = "priming+test"
)

// Scenario is a study: who is simulated, by which models, answering what,
// and how the answers are compared with people. After Parse every default is
// filled in, so the fields can be used as they are.
type Scenario struct {
	Name           string          `toml:"name"`
	Description    string          `toml:"description,omitempty"`
	Seed           uint64          `toml:"seed"`
	Population     Population      `toml:"population"`
	Models         []Model         `toml:"models"`
	Questionnaires []Questionnaire `toml:"questionnaires"`
	Games          Games           `toml:"games,omitempty"`
	Analysis       Analysis        `toml:"analysis"`
	Run            Run             `toml:"run"`

	// File is where the scenario was read from; relative instrument files
	// were resolved against its directory.
	File string `toml:"-"`
}

// Population says how many agents there are and which personas they hold.
type Population struct {
	Size int `toml:"size"`
	// Strategy is the main strategy; it is always one of Strategies.
	Strategy population.Strategy `toml:"strategy"`
	// Strategies are every strategy compared in the run, sharing agents.
	Strategies []population.Strategy `toml:"strategies"`
	// Weights are the user's weights for the custom strategy, keyed by
	// value code or name, or "none".
	Weights    map[string]float64 `toml:"weights,omitempty"`
	Shares     string             `toml:"shares"`
	NoDominant float64            `toml:"no_dominant"`
	Sampling   Sampling           `toml:"sampling"`
	// Calibration is the number of agents per value prompt in the
	// calibration run of the model-specific strategy; 0 when that strategy
	// is not compared.
	Calibration int `toml:"calibration,omitzero"`
	// ModelSpecificWeight is the fit the model-specific weights are
	// proportional to: population.FitPearson (App. E, the default) or
	// population.FitValuesSimilarity; empty when that strategy is not
	// compared.
	ModelSpecificWeight population.Fit `toml:"model_specific_weight,omitempty"`
	// ModelSpecific holds the model-specific strategy's weights per model
	// name, keyed like Weights. A run calibrates the models that lack
	// them and writes the weights it used into the resolved scenario, so
	// that the results directory's scenario.toml runs again without
	// calibrating.
	ModelSpecific map[string]map[string]float64 `toml:"model_specific,omitempty"`
}

// Model is one model to simulate the population with.
type Model struct {
	Name      string  `toml:"name"`
	Backend   Backend `toml:"backend"`
	BaseURL   string  `toml:"base_url,omitempty"`
	Model     string  `toml:"model,omitempty"`
	APIKeyEnv string  `toml:"api_key_env,omitempty"`
	Mode      Mode    `toml:"mode"`
	// Temperature is a pointer so that an explicit 0 is sent as such; it
	// is never nil after Parse.
	Temperature *float64      `toml:"temperature"`
	TopP        float64       `toml:"top_p,omitzero"`      // 0: the server's default
	MaxTokens   int           `toml:"max_tokens,omitzero"` // 0: the server's default
	Samples     int           `toml:"samples"`
	Concurrency int           `toml:"concurrency"`
	Timeout     time.Duration `toml:"timeout"`
	Style       agent.Style   `toml:"style"`
	Priming     Priming       `toml:"priming"`
	Seed        *uint64       `toml:"seed,omitempty"` // nil: not sent
	// Endpoint is "chat" (the default) or "completions" for servers or
	// base models without a chat template.
	Endpoint string `toml:"endpoint,omitempty"`
	// StructuredOutputs asks vLLM to allow only the scale's options.
	StructuredOutputs bool `toml:"structured_outputs,omitempty"`
	// ReasoningEffort is sent as reasoning_effort to reasoning models
	// (OpenAI's o-series and GPT-OSS on vLLM read it): one of
	// ReasoningEfforts; empty: not sent.
	ReasoningEffort string `toml:"reasoning_effort,omitempty"`
	// ExtraBody holds JSON fields sent with every request, for switches
	// the schema does not name, such as
	// chat_template_kwargs = { enable_thinking = false } for Qwen3.
	ExtraBody map[string]any `toml:"extra_body,omitempty"`
	// PricePerMTokIn and PricePerMTokOut are the endpoint's prices per
	// million prompt and completion tokens, in the user's currency, for
	// the cost `society plan` predicts; 0: not given.
	PricePerMTokIn  float64 `toml:"price_per_mtok_in,omitzero"`
	PricePerMTokOut float64 `toml:"price_per_mtok_out,omitzero"`
}

// ReasoningEfforts are the values of a model's reasoning_effort.
var ReasoningEfforts = []string{"none", "minimal", "low", "medium", "high"}

// ReservedBodyFields are the request fields society sets itself, which a
// model's extra_body must not override: they decide what is asked and how
// the answer is read.
var ReservedBodyFields = []string{"model", "messages", "prompt", "n", "logprobs", "top_logprobs",
	"max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stream",
	"structured_outputs", "reasoning_effort"}

// Questionnaire is one instrument to administer.
type Questionnaire struct {
	Name string `toml:"name"`
	// File is a user instrument file replacing the built-in one; a
	// relative path in the scenario is resolved against the scenario's
	// directory and kept absolute here.
	File string `toml:"file,omitempty"`
	// Items, when positive, keeps only the first Items items.
	Items int `toml:"items,omitzero"`

	// The persona statements (name = "persona") only; see PersonaOptions
	// in package questionnaires. Dir holds the data set's jsonl files
	// (absolute after Parse; empty: $SOCIETY_PERSONA_DIR, then the
	// download cache); Download fetches missing files into the cache;
	// Optional skips the instrument, with a note, when no data is found;
	// Behaviors selects behaviours (empty: every file found); Statements
	// is K, the statements sampled per behaviour.
	Dir        string   `toml:"dir,omitempty"`
	Download   bool     `toml:"download,omitempty"`
	Optional   bool     `toml:"optional,omitempty"`
	Behaviors  []string `toml:"behaviors,omitempty"`
	Statements int      `toml:"statements,omitzero"`
}

// BehaviorReference is a published value × behaviour correlation matrix
// for one instrument, read from a CSV file (analysis.ReadBehaviorReference
// describes the layout).
type BehaviorReference struct {
	Instrument string `toml:"instrument"`
	// File is absolute after Parse, like instrument files.
	File string `toml:"file"`
	// Name labels the reference in results; default: the file's base name.
	Name string `toml:"name"`
}

// Bootstrap methods of the analysis.
const (
	// BootstrapPopulation resamples the whole population with
	// replacement, keeping each persona's count.
	BootstrapPopulation = "population"
	// BootstrapPaper draws BootstrapSize agents per resample, as the
	// study's App. G does.
	BootstrapPaper = "paper"
)

// Analysis configures the comparison with human references.
type Analysis struct {
	// Bootstrap is how intervals are resampled: BootstrapPopulation
	// (every resample as large as the population, the default) or
	// BootstrapPaper (the study's fixed-size resamples of BootstrapSize
	// agents).
	Bootstrap           string `toml:"bootstrap"`
	BootstrapIterations int    `toml:"bootstrap_iterations"`
	// BootstrapSize is the resample size of bootstrap = "paper"; 0
	// otherwise.
	BootstrapSize int `toml:"bootstrap_size,omitzero"`
	// NullIterations is the number of permutations behind each p-value.
	NullIterations int      `toml:"null_iterations"`
	References     []string `toml:"references"`
	// MDS is how the value correlation matrices are placed in two
	// dimensions for the Values Similarity: MDSClassical (the default,
	// the study's) or MDSSMACOF (analysis.Embed).
	MDS MDS `toml:"mds"`
	// BehaviorReferences are published value × behaviour matrices; the
	// theory templates are always used besides them.
	BehaviorReferences []BehaviorReference `toml:"behavior_references,omitempty"`
}

// Run configures execution.
type Run struct {
	// Shards is the number of agent shards; 0 chooses automatically.
	Shards int `toml:"shards"`
}

// Load reads and parses the scenario file at path.
func Load(path string) (*Scenario, error) {
	data, err := questionnaires.ReadFileMax(path, MaxFileBytes)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &Problem{File: path, Msg: err.Error()}
	}
	return Parse(data, path)
}

// Open accepts a scenario file path or the name of a built-in scenario. A
// file wins over a built-in of the same name; a folder does not, since it
// is never a scenario (after 'society run paper --out paper', 'paper'
// still names the built-in).
func Open(arg string) (*Scenario, error) {
	st, err := os.Stat(arg)
	if _, ok := builtinFile(arg); ok && err == nil && st.IsDir() {
		return Builtin(arg)
	}
	if err == nil || filepath.Ext(arg) != "" || filepath.Base(arg) != arg {
		return Load(arg)
	}
	if _, ok := builtinFile(arg); ok {
		return Builtin(arg)
	}
	return nil, &Problem{File: arg, Msg: fmt.Sprintf("no such file, and no built-in scenario of that name (built-ins: %s)", listNames(BuiltinNames()))}
}

// Resolved returns the scenario with every default filled in, as TOML that
// parses back to an equal scenario: the exact study that was run.
func (s *Scenario) Resolved() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Scenario %q with every default filled in.\n\n", s.Name)
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode scenario %q: %w", s.Name, err)
	}
	return b.Bytes(), nil
}

// Problem reports a problem found after parsing (a limit that depends on
// the machine, say) in the same form as a parse problem: file, line and
// field. The line is looked up in the scenario's file; it is 0 for a
// built-in or when the file can no longer be read.
func (s *Scenario) Problem(field, msg string) error {
	p := &Problem{File: s.File, Field: field, Msg: msg}
	if p.File == "" {
		p.File = s.Name
	}
	if src, err := os.ReadFile(s.File); err == nil {
		p.Line = lineOf(locate(src), field)
	} else if src, err := BuiltinSource(s.Name); err == nil && s.File == "" {
		p.Line = lineOf(locate(src), field)
	}
	return p
}

// Warnings lists what the scenario leaves to defaults that may not suit
// it: an OpenAI-compatible model without max_tokens gets the client's
// default budget, maxTokens, too small for a model that reasons before it
// answers. Each names the file, line and field.
func (s *Scenario) Warnings(maxTokens int) []error {
	var out []error
	for i, m := range s.Models {
		if m.Backend == OpenAI && m.MaxTokens == 0 {
			out = append(out, s.Problem(fmt.Sprintf("models[%d].max_tokens", i), fmt.Sprintf(
				"not set: model %q gets %d tokens per sampled reply (1 per distribution request); "+
					"a model that reasons first needs more, or its reasoning switched off", m.Name, maxTokens)))
		}
	}
	return out
}
