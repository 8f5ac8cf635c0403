package scenarios

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
)

// Parse decodes and validates a scenario. file names the source in problem
// messages and anchors relative instrument paths. Every problem found is
// returned at once, each a *Problem wrapping ErrInvalid, joined with
// errors.Join.
//
// The document is decoded into plain TOML values and then walked key by key
// rather than decoded into the struct: that way a wrong type is one problem
// among the others instead of the end of decoding, an explicit zero can be
// told from an absent key, and unknown keys are reported with their exact
// position (the decoder's own list of undecoded keys does not say which
// element of an array of tables they were in).
func Parse(data []byte, file string) (*Scenario, error) {
	if file == "" {
		file = "scenario"
	}
	if len(data) > MaxFileBytes {
		return nil, &Problem{File: file, Msg: fmt.Sprintf("too large: %d bytes, more than the %d a scenario may hold", len(data), MaxFileBytes)}
	}
	if line := questionnaires.TOMLTooDeep(data, questionnaires.MaxNesting); line > 0 {
		return nil, &Problem{File: file, Line: line, Msg: fmt.Sprintf("arrays or tables nested more than %d deep", questionnaires.MaxNesting)}
	}
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Problem{File: file, Line: syntaxLine(data, pe.Position), Msg: "TOML syntax: " + pe.Message}
		}
		return nil, &Problem{File: file, Msg: "TOML: " + err.Error()}
	}
	d := &decoder{file: file, lines: locate(data)}
	s := d.scenario(doc)
	if len(d.problems) > 0 {
		slices.SortStableFunc(d.problems, func(a, b *Problem) int {
			return cmp.Compare(lineKey(a.Line), lineKey(b.Line))
		})
		errs := make([]error, len(d.problems))
		for i, p := range d.problems {
			errs[i] = p
		}
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// syntaxLine is the line of the byte a syntax error points at. The
// parser's own line count has already moved past a newline when the newline
// itself is the unexpected byte, as in an unclosed table header.
func syntaxLine(data []byte, pos toml.Position) int {
	if pos.Start >= 0 && pos.Start < len(data) {
		return 1 + bytes.Count(data[:pos.Start], []byte("\n"))
	}
	return pos.Line
}

// lineKey puts problems without a line after the located ones.
func lineKey(n int) int {
	if n <= 0 {
		return math.MaxInt
	}
	return n
}

type decoder struct {
	file     string
	lines    map[string]int
	problems []*Problem
}

func (d *decoder) add(field, format string, args ...any) {
	d.problems = append(d.problems, &Problem{
		File: d.file, Line: lineOf(d.lines, field), Field: field, Msg: fmt.Sprintf(format, args...),
	})
}

// table is one TOML table being walked, with its path.
type table struct {
	path string
	m    map[string]any
}

func (t table) field(key string) string { return join(t.path, key) }

// known reports the keys of t that the schema does not have.
func (d *decoder) known(t table, keys ...string) {
	var unknown []string
	for k := range t.m {
		if !slices.Contains(keys, k) {
			unknown = append(unknown, k)
		}
	}
	slices.SortFunc(unknown, func(a, b string) int {
		return cmp.Or(cmp.Compare(lineOf(d.lines, t.field(a)), lineOf(d.lines, t.field(b))), cmp.Compare(a, b))
	})
	for _, k := range unknown {
		d.add(t.field(k), "unknown key (want one of %s)", strings.Join(keys, ", "))
	}
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case map[string]any:
		return "table"
	case []map[string]any, []any:
		return "array"
	case time.Time:
		return "datetime"
	}
	return fmt.Sprintf("%T", v)
}

func (d *decoder) wrongType(field, want string, v any) {
	d.add(field, "must be %s, got %s", want, typeName(v))
}

func (d *decoder) str(t table, key string) (string, bool) {
	v, ok := t.m[key]
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		d.wrongType(t.field(key), "a string", v)
	}
	return s, ok
}

func (d *decoder) integer(t table, key string) (int64, bool) {
	v, ok := t.m[key]
	if !ok {
		return 0, false
	}
	n, ok := v.(int64)
	if !ok {
		d.wrongType(t.field(key), "an integer", v)
	}
	return n, ok
}

// intIn reads an integer key that must lie in [lo, hi], returning def when
// the key is absent or wrong.
func (d *decoder) intIn(t table, key string, lo, hi, def int64) int {
	n, ok := d.integer(t, key)
	if !ok {
		return int(def)
	}
	if n < lo || n > hi {
		d.add(t.field(key), "must be between %d and %d, got %d", lo, hi, n)
		return int(def)
	}
	return int(n)
}

func (d *decoder) number(t table, key string) (float64, bool) {
	v, ok := t.m[key]
	if !ok {
		return 0, false
	}
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			d.add(t.field(key), "must be a finite number, got %v", x)
			return 0, false
		}
		return x, true
	case int64:
		return float64(x), true
	}
	d.wrongType(t.field(key), "a number", v)
	return 0, false
}

func (d *decoder) strings(t table, key string) ([]string, bool) {
	v, ok := t.m[key]
	if !ok {
		return nil, false
	}
	list, ok := v.([]any)
	if !ok {
		d.wrongType(t.field(key), "an array of strings", v)
		return nil, false
	}
	out := make([]string, 0, len(list))
	good := true
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			d.wrongType(fmt.Sprintf("%s[%d]", t.field(key), i), "a string", e)
			good = false
		}
		out = append(out, s)
	}
	return out, good
}

func (d *decoder) sub(t table, key string) (table, bool) {
	v, ok := t.m[key]
	if !ok {
		return table{path: t.field(key)}, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.wrongType(t.field(key), "a table", v)
		return table{path: t.field(key)}, false
	}
	return table{path: t.field(key), m: m}, true
}

// tables reads an array of tables, whether written as [[key]] headers or as
// an inline array. present reports whether the key was there at all.
func (d *decoder) tables(t table, key string) (out []table, present bool) {
	v, ok := t.m[key]
	if !ok {
		return nil, false
	}
	if l, ok := v.([]any); ok && len(l) == 0 {
		return nil, true
	}
	var list []any
	switch x := v.(type) {
	case []map[string]any:
		for _, m := range x {
			list = append(list, m)
		}
	case []any:
		list = x
	default:
		d.wrongType(t.field(key), "an array of tables", v)
		return nil, true
	}
	for i, e := range list {
		path := fmt.Sprintf("%s[%d]", t.field(key), i)
		m, ok := e.(map[string]any)
		if !ok {
			d.wrongType(path, "a table", e)
			continue
		}
		out = append(out, table{path: path, m: m})
	}
	return out, true
}

// oneOf reads a string key that must be one of choices.
func oneOf[T ~string](d *decoder, t table, key string, def T, choices ...T) T {
	s, ok := d.str(t, key)
	if !ok {
		return def
	}
	if slices.Contains(choices, T(s)) {
		return T(s)
	}
	names := make([]string, len(choices))
	for i, c := range choices {
		names[i] = string(c)
	}
	d.add(t.field(key), "unknown value %q (want one of %s)", s, strings.Join(names, ", "))
	return def
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (d *decoder) scenario(doc map[string]any) *Scenario {
	top := table{m: doc}
	d.known(top, "name", "description", "seed", "population", "models", "questionnaires", "games", "analysis", "run")
	s := &Scenario{File: d.file, Seed: DefaultSeed}

	s.Name = defaultName(d.file)
	if name, ok := d.str(top, "name"); ok {
		if nameRE.MatchString(name) {
			s.Name = name
		} else {
			d.add("name", "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (it names the results), got %q", name)
		}
	}
	s.Description, _ = d.str(top, "description")
	if n, ok := d.integer(top, "seed"); ok {
		if n < 0 {
			d.add("seed", "must not be negative, got %d", n)
		} else {
			s.Seed = uint64(n)
		}
	}
	pop, _ := d.sub(top, "population")
	s.Population = d.population(pop)
	s.Models = d.models(top)
	s.Population.ModelSpecific = d.modelSpecific(pop, s)
	s.Questionnaires = d.questionnaires(top)
	s.Games = d.games(top, s.Population)
	an, _ := d.sub(top, "analysis")
	s.Analysis = d.analysis(an)
	s.Analysis.BehaviorReferences = d.behaviorReferences(an, s.Questionnaires)
	run, _ := d.sub(top, "run")
	d.known(run, "shards")
	s.Run.Shards = d.intIn(run, "shards", 0, MaxShards, 0)
	return s
}

// defaultName derives a scenario name from its file name.
func defaultName(file string) string {
	base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	name := strings.Map(func(r rune) rune {
		if r < 0x80 && bare(byte(r)) || r == '.' {
			return r
		}
		return '-'
	}, base)
	name = strings.TrimLeft(name, "-._")
	if len(name) > 64 {
		name = name[:64]
	}
	if !nameRE.MatchString(name) {
		return "scenario"
	}
	return name
}

func (d *decoder) population(t table) Population {
	d.known(t, "size", "strategy", "strategies", "weights", "shares", "no_dominant", "sampling", "calibration", "model_specific_weight", "model_specific")
	p := Population{
		Shares:     population.DefaultShares,
		NoDominant: population.DefaultNoDominant,
		Sampling:   Stratified,
	}
	p.Size = d.intIn(t, "size", 1, MaxSize, DefaultSize)

	var strategy population.Strategy
	if s, ok := d.str(t, "strategy"); ok {
		st, err := population.ParseStrategy(s)
		if err != nil {
			d.add(t.field("strategy"), "%v", err)
		}
		strategy = st
	}
	list, listed := d.strings(t, "strategies")
	if _, present := t.m["strategies"]; present && listed && len(list) == 0 {
		d.add(t.field("strategies"), "must name at least one strategy")
	}
	for i, s := range list {
		field := fmt.Sprintf("%s[%d]", t.field("strategies"), i)
		st, err := population.ParseStrategy(s)
		if err != nil {
			d.add(field, "%v", err)
			continue
		}
		if slices.Contains(p.Strategies, st) {
			d.add(field, "%s is listed twice", st)
			continue
		}
		p.Strategies = append(p.Strategies, st)
	}
	switch {
	case len(p.Strategies) == 0 && strategy == "":
		strategy = DefaultStrategy
		p.Strategies = []population.Strategy{strategy}
	case len(p.Strategies) == 0:
		p.Strategies = []population.Strategy{strategy}
	case strategy == "":
		strategy = p.Strategies[0]
	case !slices.Contains(p.Strategies, strategy):
		d.add(t.field("strategy"), "must be one of population.strategies when both are set, got %q", strategy)
	}
	p.Strategy = strategy

	custom := slices.Contains(p.Strategies, population.Custom)
	if w, ok := d.sub(t, "weights"); ok {
		p.Weights = d.weights(w)
		if !custom {
			d.add(w.path, "are only used by the custom strategy; set strategy = \"custom\" or remove them")
		}
	} else if _, present := t.m["weights"]; !present && custom {
		d.add(strategyField(t, p.Strategies, population.Custom), "custom needs population.weights")
	}

	if s, ok := d.str(t, "shares"); ok {
		if slices.Contains(population.ShareSources(), s) {
			p.Shares = s
		} else {
			d.add(t.field("shares"), "unknown human sample %q (want one of %s)", s, strings.Join(population.ShareSources(), ", "))
		}
	}
	if x, ok := d.number(t, "no_dominant"); ok {
		if x < 0 || x > 1 {
			d.add(t.field("no_dominant"), "must be between 0 and 1, got %v", x)
		} else {
			p.NoDominant = x
		}
	}
	p.Sampling = oneOf(d, t, "sampling", Stratified, Stratified, Random)
	d.humanSplit(t, p)
	p.Calibration = d.calibration(t, p.Strategies)
	p.ModelSpecificWeight = d.modelSpecificWeight(t, p.Strategies)
	return p
}

// humanSplit refuses population.shares and population.no_dominant when no
// listed strategy uses them: only h-norm, h-even and h-np take the human
// sample's dominant-value split, and only h-even and h-np the share without
// a dominant value. The defaults are accepted, as a resolved scenario.toml
// holds them whatever the strategies.
func (d *decoder) humanSplit(t table, p Population) {
	uses := func(list ...population.Strategy) bool {
		return slices.ContainsFunc(p.Strategies, func(s population.Strategy) bool { return slices.Contains(list, s) })
	}
	if _, ok := t.m["shares"]; ok && p.Shares != population.DefaultShares && !uses(population.HNorm, population.HEven, population.HNP) {
		d.add(t.field("shares"), "is used only by the h-norm, h-even and h-np strategies, and none of them is compared (%s); add one to population.strategies or remove the key",
			strategyList(p.Strategies))
	}
	if _, ok := t.m["no_dominant"]; ok && p.NoDominant != population.DefaultNoDominant && !uses(population.HEven, population.HNP) {
		d.add(t.field("no_dominant"), "is used only by the h-even and h-np strategies, and neither is compared (%s); add one to population.strategies or remove the key",
			strategyList(p.Strategies))
	}
}

// strategyField is where a strategy was named: population.strategies[i]
// when it was listed there, population.strategy otherwise.
func strategyField(t table, list []population.Strategy, s population.Strategy) string {
	if _, ok := t.m["strategies"]; ok {
		return fmt.Sprintf("%s[%d]", t.field("strategies"), slices.Index(list, s))
	}
	return t.field("strategy")
}

func (d *decoder) weights(t table) map[string]float64 {
	m := make(map[string]float64, len(t.m))
	good := true
	for k := range t.m {
		x, ok := d.number(t, k)
		good = good && ok
		m[k] = x
	}
	if !good {
		return m
	}
	_, err := population.CustomWeights(m)
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else if err != nil {
		list = []error{err}
	}
	for _, e := range list {
		var we *population.WeightError
		if errors.As(e, &we) {
			field := t.path
			if we.Key != "" {
				field = join(t.path, we.Key)
			}
			d.add(field, "%v", we.Err)
			continue
		}
		d.add(t.path, "%v", e)
	}
	return m
}

func (d *decoder) models(top table) []Model {
	list, present := d.tables(top, "models")
	if !present {
		return []Model{defaultModel()}
	}
	if raw, ok := top.m["models"].([]any); ok && len(raw) == 0 {
		d.add("models", "must list at least one model, or be left out for the synthetic respondents")
	}
	var out []Model
	names := map[string]string{}
	files := map[string]int{}
	for _, t := range list {
		m := d.model(t)
		field := t.field("name")
		if _, named := t.m["name"]; !named {
			field = t.path
		}
		if prev, ok := names[m.Name]; ok {
			d.add(field, "duplicate model name %q (also %s); give each model its own name", m.Name, prev)
		} else if i, ok := files[fileKey(m.Name)]; ok {
			d.add(field, "model name %q would write the same figure and table files as %q (%s); give the models names that still differ with capitals made small and every character but a letter, digit, '-' or '_' made '_', as in file names",
				m.Name, out[i].Name, list[i].path)
			names[m.Name] = t.path
		} else {
			names[m.Name] = t.path
			files[fileKey(m.Name)] = len(out)
		}
		out = append(out, m)
	}
	return out
}

// maxModelName is the longest model name: it is part of figure file names
// and of every CSV row, and file names longer than 255 bytes fail at the
// very end of a run.
const maxModelName = 64

// modelNameRE is the character set of model names: what model ids use
// ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3:8b") and nothing a CSV
// field or a file name would need to quote.
var modelNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,63}$`)

// fileKey is what a name becomes in a results file name (the analysis
// package maps every character but letters, digits, '-' and '_' to '_'),
// folded to lower case because some file systems do not tell cases apart.
// Two models with the same key would overwrite each other's figures.
func fileKey(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, name)
}

// redactURL hides what a base_url may carry as a secret: the user
// information (a password, or a token given as the user name), every query
// value and the fragment. A URL that does not parse is not shown at all.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"xxxxx"}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// clip shortens a long value quoted in a message.
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:60] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

func defaultModel() Model {
	temp := DefaultTemperature
	return Model{
		Name: string(Synthetic), Backend: Synthetic, Mode: Distribution, Temperature: &temp,
		Samples: DefaultSamples, Concurrency: DefaultConcurrency, Timeout: DefaultTimeout,
		Style: agent.StyleDescription, Priming: PrimingOnly,
	}
}

func (d *decoder) model(t table) Model {
	d.known(t, "name", "backend", "base_url", "model", "api_key_env", "mode", "temperature", "top_p",
		"max_tokens", "samples", "concurrency", "timeout", "style", "priming", "seed", "endpoint", "structured_outputs",
		"reasoning_effort", "extra_body", "price_per_mtok_in", "price_per_mtok_out")
	m := defaultModel()
	m.BaseURL, _ = d.str(t, "base_url")
	m.Model, _ = d.str(t, "model")
	m.APIKeyEnv, _ = d.str(t, "api_key_env")
	// An endpoint without a backend can only mean an OpenAI-compatible one.
	def := Synthetic
	if _, ok := t.m["base_url"]; ok {
		def = OpenAI
	} else if _, ok := t.m["model"]; ok {
		def = OpenAI
	}
	m.Backend = oneOf(d, t, "backend", def, Synthetic, OpenAI)
	if m.Backend == OpenAI {
		if m.BaseURL == "" {
			if _, ok := t.m["base_url"]; !ok {
				d.add(t.field("base_url"), "required for backend openai")
			}
		} else if u, err := url.Parse(m.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.add(t.field("base_url"), "must be an http or https URL, got %q", redactURL(m.BaseURL))
		} else if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			d.add(t.field("base_url"), "%q carries credentials, a query string or a fragment: put the API key in the environment variable named by api_key_env, so that it is never written to the results or shown in a message", redactURL(m.BaseURL))
		}
		if m.Model == "" {
			d.add(t.field("model"), "required for backend openai (the model name the server knows)")
		}
	}
	if m.APIKeyEnv != "" && strings.ContainsAny(m.APIKeyEnv, "= \t\n") {
		d.add(t.field("api_key_env"), "must name an environment variable, got %q", m.APIKeyEnv)
	}
	m.Name = string(m.Backend)
	if m.Model != "" {
		m.Name = m.Model
	}
	if name, ok := d.str(t, "name"); ok {
		if !modelNameRE.MatchString(name) {
			d.add(t.field("name"), "must be 1 to %d letters, digits, '.', '_', '-', '/', ':', '+' or '@', starting with a letter or digit (it goes into file names and CSV columns), got %q",
				maxModelName, clip(name))
		}
		m.Name = name // even when refused, so that it is not reported again as a duplicate default name
	} else if m.Model != "" && !modelNameRE.MatchString(m.Model) {
		d.add(t.field("model"), "%q cannot name the model's results (at most %d letters, digits, '.', '_', '-', '/', ':', '+' or '@'); set models.name to a short label",
			clip(m.Model), maxModelName)
	}
	m.Mode = oneOf(d, t, "mode", Distribution, Distribution, Sample)
	if x, ok := d.number(t, "temperature"); ok {
		if x < 0 || x > 2 {
			d.add(t.field("temperature"), "must be between 0 and 2, got %v", x)
		} else {
			m.Temperature = &x
		}
	}
	if x, ok := d.number(t, "top_p"); ok {
		if x <= 0 || x > 1 {
			d.add(t.field("top_p"), "must be above 0 and at most 1, got %v", x)
		} else {
			m.TopP = x
		}
	}
	m.MaxTokens = d.intIn(t, "max_tokens", 1, 1_000_000, 0)
	for _, p := range []struct {
		key string
		v   *float64
	}{{"price_per_mtok_in", &m.PricePerMTokIn}, {"price_per_mtok_out", &m.PricePerMTokOut}} {
		if x, ok := d.number(t, p.key); ok {
			if !(x >= 0 && x <= 1e6) {
				d.add(t.field(p.key), "must be a price per million tokens from 0 to 1e6, got %v", x)
			} else {
				*p.v = x
			}
		}
	}
	m.Samples = d.intIn(t, "samples", 1, MaxSamples, DefaultSamples)
	m.Concurrency = d.intIn(t, "concurrency", 1, MaxConcurrency, DefaultConcurrency)
	if s, ok := d.str(t, "timeout"); ok {
		dur, err := time.ParseDuration(s)
		switch {
		case err != nil:
			d.add(t.field("timeout"), "must be a duration such as \"60s\" or \"2m\", got %q", s)
		case dur <= 0:
			d.add(t.field("timeout"), "must be positive, got %q", s)
		default:
			m.Timeout = dur
		}
	}
	m.Style = oneOf(d, t, "style", agent.StyleDescription, agent.StyleDescription, agent.StyleName, agent.StyleNone)
	m.Priming = oneOf(d, t, "priming", PrimingOnly, PrimingOnly, TestOnly, PrimingAndTest)
	if n, ok := d.integer(t, "seed"); ok {
		if n < 0 {
			d.add(t.field("seed"), "must not be negative, got %d", n)
		} else {
			seed := uint64(n)
			m.Seed = &seed
		}
	}
	if _, ok := t.m["endpoint"]; ok {
		m.Endpoint = oneOf(d, t, "endpoint", EndpointChat, EndpointChat, EndpointCompletions)
	}
	m.StructuredOutputs, _ = d.boolean(t, "structured_outputs")
	if _, ok := t.m["reasoning_effort"]; ok {
		m.ReasoningEffort = oneOf(d, t, "reasoning_effort", "", ReasoningEfforts...)
	}
	if eb, ok := d.sub(t, "extra_body"); ok {
		keys := make([]string, 0, len(eb.m))
		for k := range eb.m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if slices.Contains(ReservedBodyFields, k) {
				d.add(eb.field(k), "is set by society itself (use the model's own key where there is one)")
			}
		}
		if len(eb.m) > 0 {
			m.ExtraBody = eb.m
		}
	}
	if m.Backend == Synthetic {
		d.syntheticSettings(t, m)
	}
	return m
}

// syntheticSettings refuses the keys that cannot apply to the synthetic
// respondents, so that no setting is ignored without a word: they answer in
// process from their own distributions, as a model sampled at temperature 1
// would, always in distribution mode, with no request, server or
// per-model seed (the scenario seed drives them). The values that describe
// what the synthetic backend does anyway (mode "distribution", temperature
// 1, and the default samples, concurrency and timeout) are accepted: a
// resolved scenario.toml holds them for every model.
func (d *decoder) syntheticSettings(t table, m Model) {
	if _, ok := t.m["mode"]; ok && m.Mode == Sample {
		d.add(t.field("mode"), "does not apply to backend synthetic, which always answers in distribution mode; use backend openai with `society model-server` to try sample mode")
	}
	if _, ok := t.m["temperature"]; ok && m.Temperature != nil && *m.Temperature != DefaultTemperature {
		d.add(t.field("temperature"), "does not apply to backend synthetic, which answers from its own distributions (as at temperature %v); remove the key", DefaultTemperature)
	}
	if _, ok := t.m["samples"]; ok && m.Samples != DefaultSamples {
		d.add(t.field("samples"), "does not apply to backend synthetic, which answers in distribution mode (samples count repetitions in sample mode); remove the key")
	}
	if _, ok := t.m["concurrency"]; ok && m.Concurrency != DefaultConcurrency {
		d.add(t.field("concurrency"), "does not apply to backend synthetic, which answers in process without requests; remove the key")
	}
	if _, ok := t.m["timeout"]; ok && m.Timeout != DefaultTimeout {
		d.add(t.field("timeout"), "does not apply to backend synthetic, which answers in process without requests; remove the key")
	}
	for _, k := range openAIOnly {
		if _, ok := t.m[k]; ok {
			why := ""
			if k == "seed" {
				why = " (the synthetic respondents draw from the scenario's seed)"
			}
			d.add(t.field(k), "only applies to backend = \"openai\", whose requests it configures; backend synthetic answers in process and would ignore it%s; remove the key, or set backend = \"openai\"", why)
		}
	}
}

// openAIOnly are the model keys that configure requests to an
// OpenAI-compatible endpoint and nothing else.
var openAIOnly = []string{"base_url", "model", "api_key_env", "top_p", "max_tokens", "seed", "endpoint",
	"structured_outputs", "reasoning_effort", "extra_body", "price_per_mtok_in", "price_per_mtok_out"}

func (d *decoder) questionnaires(top table) []Questionnaire {
	list, present := d.tables(top, "questionnaires")
	if !present {
		return []Questionnaire{{Name: DefaultInstrument}}
	}
	if raw, ok := top.m["questionnaires"].([]any); ok && len(raw) == 0 {
		d.add("questionnaires", "must list at least one questionnaire, or be left out for %s", DefaultInstrument)
	}
	var out []Questionnaire
	var asked []askedInstrument
	seen := map[string]string{}
	for _, t := range list {
		d.known(t, "name", "file", "items", "dir", "download", "optional", "behaviors", "statements")
		var q Questionnaire
		var inst *questionnaires.Instrument
		file, hasFile := d.str(t, "file")
		if hasFile {
			q.File = d.resolve(file)
			inst = d.instrumentFile(t.field("file"), file)
		}
		name, ok := d.str(t, "name")
		switch {
		case !ok:
			if _, present := t.m["name"]; !present {
				d.add(t.field("name"), "required (one of %s)", strings.Join(instrumentNames(), ", "))
			}
		case !hasFile && !slices.Contains(instrumentNames(), name):
			d.add(t.field("name"), "unknown questionnaire %q (want one of %s, or give a file)", name, strings.Join(instrumentNames(), ", "))
		case strings.TrimSpace(name) == "":
			d.add(t.field("name"), "must not be empty")
		case !nameRE.MatchString(name):
			d.add(t.field("name"), "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (it goes into file names and CSV columns), got %q", clip(name))
		default:
			q.Name = name
			if prev, dup := seen[name]; dup {
				d.add(t.field("name"), "questionnaire %q is listed twice (also %s)", name, prev)
			}
			seen[name] = t.path
			if !hasFile {
				inst, _ = questionnaires.Builtin(name)
			}
		}
		if hasFile && inst != nil && q.Name != "" && inst.Name != q.Name {
			// The run keeps answers, items and references under the
			// instrument's own name: this one would be ignored.
			d.add(t.field("name"), "%q differs from the name %q that %s gives its instrument, under which the run keeps its answers, items and references; set name = %q",
				q.Name, inst.Name, file, inst.Name)
		}
		q.Items = d.intIn(t, "items", 1, MaxItems, 0)
		d.personaOptions(t, &q)
		if inst != nil && q.Items > len(inst.Items) {
			d.add(t.field("items"), "must be at most %d (%s has %d items), got %d", len(inst.Items), inst.Name, len(inst.Items), q.Items)
			q.Items = 0
		}
		asked = append(asked, askedInstrument{t: t, q: q, inst: inst})
		out = append(out, q)
	}
	d.feasible(asked)
	return out
}

// instrumentFile checks and loads a user instrument file. Only regular
// files are read, so that a scenario cannot make validation block on a
// device or a pipe.
func (d *decoder) instrumentFile(field, written string) *questionnaires.Instrument {
	// Relative to the scenario as it was named, so messages stay short.
	path := written
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(d.file), written)
	}
	info, err := os.Stat(path)
	switch {
	case err != nil:
		d.add(field, "cannot read %q", written)
		return nil
	case !info.Mode().IsRegular():
		d.add(field, "%q is not a regular file, want an instrument file", written)
		return nil
	case info.Size() > questionnaires.MaxFileBytes:
		d.add(field, "instrument file %q is too large: %d bytes, more than the %d an instrument file may hold", written, info.Size(), questionnaires.MaxFileBytes)
		return nil
	}
	inst, err := questionnaires.Load(path)
	if err != nil {
		d.add(field, "invalid instrument file %q: %s", written, strings.ReplaceAll(err.Error(), "\n", "; "))
		return nil
	}
	return inst
}

// resolve anchors a relative instrument path at the scenario's directory.
func (d *decoder) resolve(file string) string {
	if file == "" || filepath.IsAbs(file) {
		return file
	}
	p := filepath.Join(filepath.Dir(d.file), file)
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

func (d *decoder) analysis(t table) Analysis {
	d.known(t, "bootstrap", "bootstrap_iterations", "bootstrap_size", "mds", "null_iterations", "references", "behavior_references")
	a := Analysis{References: DefaultReferences(), Bootstrap: BootstrapPopulation}
	if m, ok := d.str(t, "bootstrap"); ok {
		switch m {
		case BootstrapPopulation, BootstrapPaper:
			a.Bootstrap = m
		default:
			d.add(t.field("bootstrap"), "unknown bootstrap %q (want %s or %s)", m, BootstrapPopulation, BootstrapPaper)
		}
	} else if _, sized := t.m["bootstrap_size"]; sized {
		// A resample size with no method is the study's fixed-size design,
		// as every scenario written before the method could be named says
		// (their results directories are rebuilt as they were run); the
		// results label it "paper".
		a.Bootstrap = BootstrapPaper
	}
	if a.Bootstrap == BootstrapPaper {
		a.BootstrapIterations = d.intIn(t, "bootstrap_iterations", 1, MaxBootstrap, DefaultPaperIterations)
		a.BootstrapSize = d.intIn(t, "bootstrap_size", 1, MaxBootstrap, DefaultBootstrap)
	} else {
		a.BootstrapIterations = d.intIn(t, "bootstrap_iterations", 1, MaxBootstrap, DefaultIterations)
		// A resample size other than the population's contradicts
		// bootstrap = "population": the intervals would describe another
		// statistic than the one reported.
		if n := d.intIn(t, "bootstrap_size", 1, MaxBootstrap, 0); n != 0 {
			d.add(t.field("bootstrap_size"), "applies only with bootstrap = %q (the default %q resamples the whole population)", BootstrapPaper, BootstrapPopulation)
		}
	}
	a.NullIterations = d.intIn(t, "null_iterations", 1, MaxBootstrap, DefaultNullIterations)
	a.MDS = oneOf(d, t, "mds", MDSClassical, MDSClassical, MDSSMACOF)
	refs, ok := d.strings(t, "references")
	if !ok {
		return a
	}
	if len(refs) == 0 {
		d.add(t.field("references"), "must name at least one reference (one of %s)", strings.Join(ReferenceNames(), ", "))
	}
	var good []string
	for i, r := range refs {
		field := fmt.Sprintf("%s[%d]", t.field("references"), i)
		switch {
		case !slices.Contains(ReferenceNames(), r):
			d.add(field, "unknown reference %q (want one of %s)", r, strings.Join(ReferenceNames(), ", "))
		case slices.Contains(good, r):
			d.add(field, "%s is listed twice", r)
		default:
			good = append(good, r)
		}
	}
	a.References = good
	return a
}

// ReferenceNames lists the human value-structure references a scenario may
// compare with: each sample's correlations of raw value scores and of
// MRAT-centred scores.
func ReferenceNames() []string {
	return []string{
		"pvq40_smacof_mrat", "pvq40_smacof_raw",
		"gss2012_mrat", "gss2012_raw",
		"ess_sweden_mrat", "ess_sweden_raw",
	}
}

// DefaultReferences are the references used when a scenario names none: the
// MRAT-centred structure of every sample, as the study compares centred
// scores.
func DefaultReferences() []string {
	return []string{"pvq40_smacof_mrat", "gss2012_mrat", "ess_sweden_mrat"}
}

// instrumentNames lists the questionnaires a scenario may name: the
// built-in instruments and the persona statements, which are loaded from
// their data set at run time.
func instrumentNames() []string {
	names := questionnaires.Names()
	if !slices.Contains(names, "persona") {
		names = append(names, "persona")
	}
	return names
}

func listNames(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// Limits and defaults of the persona statements, the model-specific
// calibration and published behaviour references.
const (
	DefaultStatements  = 10
	MaxStatements      = 1000
	DefaultCalibration = 100
	MaxCalibration     = 100_000
)

// calibration reads population.calibration, which only the model-specific
// strategy uses.
func (d *decoder) calibration(t table, strategies []population.Strategy) int {
	uses := slices.Contains(strategies, population.ModelSpecific)
	n := d.intIn(t, "calibration", 10, MaxCalibration, DefaultCalibration)
	if _, present := t.m["calibration"]; present && !uses {
		d.add(t.field("calibration"), "is only used by the model-specific strategy; add it to the strategies or remove this key")
	}
	if !uses {
		return 0
	}
	return n
}

// modelSpecificWeight reads population.model_specific_weight, which only
// the model-specific strategy uses.
func (d *decoder) modelSpecificWeight(t table, strategies []population.Strategy) population.Fit {
	fits := population.Fits()
	fit := oneOf(d, t, "model_specific_weight", fits[0], fits...)
	if _, present := t.m["model_specific_weight"]; present && !slices.Contains(strategies, population.ModelSpecific) {
		d.add(t.field("model_specific_weight"), "is only used by the model-specific strategy; add it to the strategies or remove this key")
	}
	if !slices.Contains(strategies, population.ModelSpecific) {
		return ""
	}
	return fit
}

// personaOptions reads the keys that only the persona statements take.
func (d *decoder) personaOptions(t table, q *Questionnaire) {
	keys := []string{"dir", "download", "optional", "behaviors", "statements"}
	name, _ := t.m["name"].(string)
	if name != questionnaires.PersonaName || q.File != "" {
		for _, k := range keys {
			if _, ok := t.m[k]; ok {
				why := "only the persona statements (name = \"persona\") take it"
				if q.File != "" {
					why = "it does not apply to an instrument given as a file"
				}
				d.add(t.field(k), "%s", why)
			}
		}
		return
	}
	q.Statements = d.intIn(t, "statements", 1, MaxStatements, DefaultStatements)
	q.Download, _ = d.boolean(t, "download")
	q.Optional, _ = d.boolean(t, "optional")
	if dir, ok := d.str(t, "dir"); ok {
		switch {
		case dir == "":
			d.add(t.field("dir"), "must not be empty (leave it out to use $%s or the download cache)", questionnaires.PersonaDirEnv)
		default:
			q.Dir = d.resolve(dir)
			if info, err := os.Stat(q.Dir); err != nil || !info.IsDir() {
				d.add(t.field("dir"), "%q is not a directory of persona files (<behaviour>.jsonl)", dir)
			}
		}
	}
	list, _ := d.strings(t, "behaviors")
	if _, present := t.m["behaviors"]; present && list != nil && len(list) == 0 {
		d.add(t.field("behaviors"), "must name at least one behaviour, or be left out for all")
	}
	for i, b := range list {
		field := fmt.Sprintf("%s[%d]", t.field("behaviors"), i)
		switch {
		case slices.Contains(q.Behaviors, b):
			d.add(field, "%q is listed twice", b)
			continue
		case !questionnaires.ValidBehaviorName(b):
			d.add(field, "%q is not a behaviour name (letters, digits, '-' and '_')", b)
			continue
		case questionnaires.KnownPersonaBehavior(b):
		case q.Dir != "" && regular(filepath.Join(q.Dir, b+".jsonl")):
			// A behaviour of the user's own data.
		default:
			d.add(field, "unknown behaviour %q (not one of the data set's %d behaviours%s)", b, len(questionnaires.PersonaBehaviors()), closest(b))
			continue
		}
		q.Behaviors = append(q.Behaviors, b)
	}
}

func regular(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}

// closest suggests the known behaviour a misspelt one was probably meant
// to be: the nearest by edit distance, when it is at most three edits away.
func closest(b string) string {
	best, bestD := "", 4
	for _, k := range questionnaires.PersonaBehaviors() {
		if d := editDistance(b, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (d *decoder) boolean(t table, key string) (bool, bool) {
	v, ok := t.m[key]
	if !ok {
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		d.wrongType(t.field(key), "a boolean", v)
	}
	return b, ok
}

// behaviorReferences reads analysis.behavior_references: each names a
// listed, non-value questionnaire and a readable file. The file's content
// is checked when the run is planned, against the instrument's keys.
func (d *decoder) behaviorReferences(an table, qs []Questionnaire) []BehaviorReference {
	list, _ := d.tables(an, "behavior_references")
	var out []BehaviorReference
	seen := map[string]string{}
	for _, t := range list {
		d.known(t, "instrument", "file", "name")
		var r BehaviorReference
		inst, ok := d.str(t, "instrument")
		switch {
		case !ok:
			if _, present := t.m["instrument"]; !present {
				d.add(t.field("instrument"), "required: the questionnaire the matrix is for")
			}
		case !slices.ContainsFunc(qs, func(q Questionnaire) bool { return q.Name == inst }):
			var names []string
			for _, q := range qs {
				names = append(names, q.Name)
			}
			d.add(t.field("instrument"), "%q is not one of the scenario's questionnaires (%s)", inst, strings.Join(names, ", "))
		default:
			if in, err := questionnaires.Builtin(inst); err == nil && in.Kind == questionnaires.KindValues {
				d.add(t.field("instrument"), "%q measures values; behaviour references are for the other instruments", inst)
			}
			r.Instrument = inst
		}
		file, ok := d.str(t, "file")
		switch {
		case !ok:
			if _, present := t.m["file"]; !present {
				d.add(t.field("file"), "required: a CSV file of the value × behaviour correlations")
			}
		default:
			path := file
			if !filepath.IsAbs(path) {
				path = filepath.Join(filepath.Dir(d.file), file)
			}
			if !regular(path) {
				d.add(t.field("file"), "cannot read %q", file)
			}
			r.File = d.resolve(file)
			r.Name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		}
		if name, ok := d.str(t, "name"); ok {
			r.Name = name
		}
		switch {
		case r.Name == "" && r.File == "":
		case !nameRE.MatchString(r.Name):
			d.add(t.field("name"), "must be 1 to 64 letters, digits, '.', '_' or '-', got %q", r.Name)
		case r.Name == "theory":
			d.add(t.field("name"), "\"theory\" names the built-in templates; choose another name")
		default:
			key := r.Instrument + "/" + r.Name
			if prev, dup := seen[key]; dup {
				d.add(t.field("name"), "reference %q for %s is given twice (also %s)", r.Name, r.Instrument, prev)
			}
			seen[key] = t.path
		}
		out = append(out, r)
	}
	return out
}

// modelSpecific reads population.model_specific: calibrated weights per
// model, for models of the scenario, with the model-specific strategy.
func (d *decoder) modelSpecific(pop table, s *Scenario) map[string]map[string]float64 {
	t, ok := d.sub(pop, "model_specific")
	if !ok {
		return nil
	}
	if !slices.Contains(s.Population.Strategies, population.ModelSpecific) {
		d.add(t.path, "are only used by the model-specific strategy; add it to the strategies or remove them")
	}
	out := map[string]map[string]float64{}
	names := slices.Sorted(maps.Keys(t.m))
	for _, name := range names {
		if !slices.ContainsFunc(s.Models, func(m Model) bool { return m.Name == name }) {
			d.add(t.field(name), "%q is not one of the scenario's models", name)
			continue
		}
		w, ok := d.sub(t, name)
		if !ok {
			continue
		}
		out[name] = d.weights(w)
	}
	return out
}
