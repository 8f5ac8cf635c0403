package analysis

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/games"
	"github.com/society-sim/society/population"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// CharityGame is one model's Paired Charity Game in a run: the agents of
// one strategy play Config.Rounds rounds, numbered 1…Rounds in the answers
// (questionnaires are round 0). Each round is two sheets: the probable
// choice and the final decision.
type CharityGame struct {
	Model string
	// Strategy names the playing strategy; Member is its index in the
	// pool's strategies.
	Strategy string
	Member   int
	Config   games.Config
	Probable *questionnaires.Instrument
	Decision *questionnaires.Instrument
}

// StrategyMember finds the pool member that serves strategy for model.
func StrategyMember(pool *population.Pool, strategy, model string) (int, bool) {
	for i, m := range pool.Strategies {
		if name, ok := ScopedStrategy(m.Name, model); ok && name == strategy {
			return i, true
		}
	}
	return 0, false
}

// Plans are the answers a round expects: every agent's probable choice and
// final decision.
func (g *CharityGame) Plans(round int) []Plan {
	return []Plan{
		{Model: g.Model, Instrument: g.Probable, Items: []int{0}, Round: round},
		{Model: g.Model, Instrument: g.Decision, Items: []int{0}, Round: round},
	}
}

// AllPlans are the plans of every round.
func (g *CharityGame) AllPlans() []Plan {
	var out []Plan
	for r := 1; r <= g.Config.Rounds; r++ {
		out = append(out, g.Plans(r)...)
	}
	return out
}

// NewSession starts the game's session over the pool.
func (g *CharityGame) NewSession(pool *population.Pool) (*games.Session, error) {
	s, err := games.NewSession(g.Config, pool.Persona, games.Players(pool, g.Member))
	if err != nil {
		return nil, fmt.Errorf("game of %s: %w", g.Model, err)
	}
	return s, nil
}

// Record plays the session's next round from the answers collected for it,
// which must be complete.
func (g *CharityGame) Record(s *games.Session, c *Collector) (games.Round, error) {
	r := s.Next()
	sheets := c.Sheets(g.Plans(r))
	if len(sheets) != 2 || !c.Complete(g.Plans(r)[0]) || !c.Complete(g.Plans(r)[1]) {
		return games.Round{}, fmt.Errorf("game of %s: round %d: answers incomplete", g.Model, r)
	}
	probable, decision := sheets[0], sheets[1]
	n := c.Agents()
	d := make([]agent.Choice, n)
	p := make([]int, n)
	pn, dn := len(probable.Instrument.Items), len(decision.Instrument.Items)
	for a := range n {
		d[a] = games.Decision(decision.Codes[a*dn])
		if code := probable.Codes[a*pn]; code != 0 {
			p[a] = int(code) - 1 + probable.Instrument.Scale.Min
		}
	}
	return s.Record(d, p)
}

// Replay plays the whole game again from the collected answers: the same
// answers give the same game, whatever order they arrived in.
func (g *CharityGame) Replay(pool *population.Pool, c *Collector) (*games.Session, error) {
	s, err := g.NewSession(pool)
	if err != nil {
		return nil, err
	}
	for !s.Done() {
		if _, err := g.Record(s, c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Games is the "games" object of results.json.
type Games struct {
	PairedCharity []CharityResult `json:"paired_charity"`
}

// CharityResult is one model's Paired Charity Game.
type CharityResult struct {
	Model     string `json:"model"`
	Strategy  string `json:"strategy"`
	Synthetic bool   `json:"synthetic"`
	Agents    int    `json:"agents"`
	Players   int    `json:"players"`
	Rounds    int    `json:"rounds"`
	Endowment int    `json:"endowment"`
	Pairing   string `json:"pairing"`
	Memory    int    `json:"memory"`
	ShowRate  bool   `json:"show_rate"`

	PerRound []CharityRound `json:"per_round"`
	// Cooperation is the share of valid decisions that were contributions
	// over all rounds; Conserved says every round's accounts add up.
	Cooperation  Num                    `json:"cooperation"`
	CharityTotal int64                  `json:"charity_total"`
	PayoffTotal  int64                  `json:"payoff_total"`
	Gini         Num                    `json:"gini"`
	Conserved    bool                   `json:"conserved"`
	Conditional  ConditionalCooperation `json:"conditional_cooperation"`
	Theory       TheoryFit              `json:"theory"`
	Payoffs      []PayoffRow            `json:"payoffs"`
}

// CharityRound is one round of the game.
type CharityRound struct {
	Round       int            `json:"round"`
	Players     int            `json:"players"`
	SatOut      int            `json:"sat_out"`
	OffNetwork  int            `json:"off_network"`
	Contributed int            `json:"contributed"`
	Kept        int            `json:"kept"`
	NoDecision  int            `json:"no_decision"`
	Cooperation Num            `json:"cooperation"`
	ByValue     map[string]Num `json:"by_value"`
	ByGroup     map[string]Num `json:"by_group"`
	Charity     int64          `json:"charity"`
	Payoffs     int64          `json:"payoffs"`
	Gini        Num            `json:"gini"`
	// MeanProbable is the players' mean probable choice (1 keep … 7 donate).
	MeanProbable Num `json:"mean_probable"`
	// DistinctPrompts counts the distinct (persona, context) prompts of
	// the probable choice among every agent asked; DecisionPrompts those
	// of the final decision, whose context adds the probable choice.
	DistinctPrompts int  `json:"distinct_prompts"`
	DecisionPrompts int  `json:"distinct_decision_prompts"`
	Conserved       bool `json:"conserved"`
}

// ConditionalCooperation compares contributing after the last partner
// contributed with contributing after it kept.
type ConditionalCooperation struct {
	AfterPartnerContributed Num `json:"after_partner_contributed"`
	AfterPartnerKept        Num `json:"after_partner_kept"`
	// Difference is the first minus the second: positive for conditional
	// cooperators.
	Difference        Num `json:"difference"`
	NAfterContributed int `json:"n_after_contributed"`
	NAfterKept        int `json:"n_after_kept"`
}

// TheoryFit correlates the values' contribution rates with the theory
// templates of the study's human finding.
type TheoryFit struct {
	ReferenceKind string             `json:"reference_kind"`
	Citation      string             `json:"citation"`
	Rates         map[string]Num     `json:"contribution_rates"`
	Signs         map[string]float64 `json:"signs"`
	Cosine        map[string]Num     `json:"cosine"`
	RSigns        Num                `json:"r_signs"`
	RCosine       Num                `json:"r_cosine"`
}

// PayoffRow is one persona's line of the payoff table.
type PayoffRow struct {
	Persona     string `json:"persona"`
	Players     int    `json:"players"`
	Cooperation Num    `json:"cooperation"`
	MeanPayoff  Num    `json:"mean_payoff"`
	Given       int64  `json:"given"`
}

// computeGames replays every game of the study from the collected answers.
func (st *Study) computeGames(c *Collector) (*Games, error) {
	if len(st.Games) == 0 {
		return nil, nil
	}
	out := &Games{PairedCharity: []CharityResult{}}
	for i := range st.Games {
		g := &st.Games[i]
		s, err := g.Replay(st.Pool, c)
		if err != nil {
			return nil, err
		}
		res := charityResult(g, s)
		for _, m := range st.Models {
			if m.Name == g.Model {
				res.Synthetic = m.Synthetic
			}
		}
		out.PairedCharity = append(out.PairedCharity, res)
	}
	return out, nil
}

func charityResult(g *CharityGame, s *games.Session) CharityResult {
	cfg := s.Config()
	res := CharityResult{Model: g.Model, Strategy: g.Strategy, Agents: s.Agents(), Players: len(s.Players()),
		Rounds: cfg.Rounds, Endowment: cfg.Endowment, Pairing: string(cfg.Pairing), Memory: cfg.Memory, ShowRate: cfg.ShowRate,
		PerRound: []CharityRound{}, Conserved: true}
	var total games.Rate
	var byValue [values.N + 1]games.Rate
	for _, r := range s.Rounds() {
		cr := CharityRound{Round: r.Round, Players: r.Players, SatOut: r.SatOut, OffNetwork: r.OffNetwork,
			Contributed: r.Contributed, Kept: r.Kept, NoDecision: r.NoDecision, Cooperation: Num(r.Cooperation.Value()),
			ByValue: map[string]Num{}, ByGroup: map[string]Num{}, Charity: r.Charity, Payoffs: r.Payoffs, Gini: Num(r.Gini),
			MeanProbable: Num(r.MeanProbable), DistinctPrompts: r.DistinctPrompts, DecisionPrompts: r.DecisionPrompts,
			Conserved: r.Conserved(cfg.Endowment)}
		for i, rate := range r.ByValue {
			if rate.Decided > 0 {
				cr.ByValue[population.Persona(i).Code()] = Num(rate.Value())
			}
			byValue[i].Contributed += rate.Contributed
			byValue[i].Decided += rate.Decided
		}
		for gi, rate := range r.ByGroup {
			if rate.Decided > 0 {
				cr.ByGroup[values.Group(gi).Code()] = Num(rate.Value())
			}
		}
		total.Contributed += r.Cooperation.Contributed
		total.Decided += r.Cooperation.Decided
		res.CharityTotal += r.Charity
		res.PayoffTotal += r.Payoffs
		res.Conserved = res.Conserved && cr.Conserved
		res.PerRound = append(res.PerRound, cr)
	}
	res.Cooperation = Num(total.Value())
	afterKept, afterContributed := s.Conditional()
	res.Conditional = ConditionalCooperation{
		AfterPartnerContributed: Num(afterContributed.Value()), AfterPartnerKept: Num(afterKept.Value()),
		Difference:        Num(afterContributed.Value() - afterKept.Value()),
		NAfterContributed: afterContributed.Decided, NAfterKept: afterKept.Decided,
	}
	var rates [values.N]float64
	fit := TheoryFit{ReferenceKind: "theory", Citation: games.TheoryCitation, Rates: map[string]Num{},
		Signs: map[string]float64{}, Cosine: map[string]Num{}}
	signs, cosine := games.TheorySigns(), games.TheoryCosine()
	for _, v := range values.All() {
		rates[v] = byValue[v].Value()
		fit.Rates[v.Code()] = Num(rates[v])
		fit.Signs[v.Code()] = signs[v]
		fit.Cosine[v.Code()] = Num(cosine[v])
	}
	fit.RSigns, fit.RCosine = Num(games.TemplateCorrelation(rates, signs)), Num(games.TemplateCorrelation(rates, cosine))
	res.Theory = fit
	rows, gini := s.Payoffs()
	res.Gini = Num(gini)
	for _, row := range rows {
		res.Payoffs = append(res.Payoffs, PayoffRow{Persona: row.Persona.Code(), Players: row.Players,
			Cooperation: Num(row.Cooperation.Value()), MeanPayoff: Num(row.MeanPayoff), Given: row.Given})
	}
	return res
}

// gameFigureBase names a game's figure files in the results directory.
func gameFigureBase(model string) string { return "charity_cooperation_" + fileToken(model) }

// writeGames writes each game's figure and CSV tables into dir.
func writeGames(dir string, r *Results) error {
	if r.Games == nil || len(r.Games.PairedCharity) == 0 {
		return nil
	}
	var errs []error
	for i := range r.Games.PairedCharity {
		g := &r.Games.PairedCharity[i]
		if err := PlotCooperation(g, filepath.Join(dir, gameFigureBase(g.Model))); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "charity_rounds.csv"), func(w io.Writer) error { return writeCharityRounds(w, r.Games) }); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "charity_payoffs.csv"), func(w io.Writer) error { return writeCharityPayoffs(w, r.Games) })
}

func writeCharityRounds(w io.Writer, g *Games) error {
	cols := append([]string{"model", "round", "players", "sat_out", "contributed", "kept", "no_decision", "cooperation"}, values.Codes()...)
	cols = append(cols, "none", "charity", "payoffs", "gini", "mean_probable", "distinct_prompts", "distinct_decision_prompts", "conserved")
	t := newCSVTable(w, strings.Join(cols, ","))
	for _, res := range g.PairedCharity {
		for _, r := range res.PerRound {
			row := []string{res.Model, fmt.Sprint(r.Round), fmt.Sprint(r.Players), fmt.Sprint(r.SatOut), fmt.Sprint(r.Contributed),
				fmt.Sprint(r.Kept), fmt.Sprint(r.NoDecision), fmtNum(r.Cooperation, 4)}
			for _, c := range append(values.Codes(), "none") {
				x, ok := r.ByValue[c]
				if !ok {
					x = Num(math.NaN())
				}
				row = append(row, fmtNum(x, 4))
			}
			row = append(row, fmt.Sprint(r.Charity), fmt.Sprint(r.Payoffs), fmtNum(r.Gini, 4), fmtNum(r.MeanProbable, 3),
				fmt.Sprint(r.DistinctPrompts), fmt.Sprint(r.DecisionPrompts), fmt.Sprint(r.Conserved))
			t.row(row...)
		}
	}
	return t.close()
}

func writeCharityPayoffs(w io.Writer, g *Games) error {
	t := newCSVTable(w, "model,persona,players,cooperation,mean_payoff,given")
	for _, res := range g.PairedCharity {
		for _, p := range res.Payoffs {
			t.row(res.Model, p.Persona, strconv.Itoa(p.Players), fmtNum(p.Cooperation, 4), fmtNum(p.MeanPayoff, 2), strconv.FormatInt(p.Given, 10))
		}
	}
	return t.close()
}

// gamesSection is the report's section on the games, "" without any.
func gamesSection(r *Results) string {
	if r.Games == nil || len(r.Games.PairedCharity) == 0 {
		return ""
	}
	b := &strings.Builder{}
	b.WriteString("\n## Paired Charity Game\n\n")
	b.WriteString("Each round every player holds an endowment and keeps it, or contributes it so that its partner receives the endowment " +
		"and a social cause it names receives as much again; it first states a probable choice (1 keep … 4 can't decide … 7 donate), " +
		"then decides. Cooperation is the share of valid decisions that were contributions.\n")
	for _, g := range r.Games.PairedCharity {
		fmt.Fprintf(b, "\n### %s, strategy %s", g.Model, g.Strategy)
		if g.Synthetic {
			b.WriteString(" (synthetic respondents)")
		}
		b.WriteString("\n\n")
		if g.Synthetic {
			b.WriteString("> **Synthetic respondents.** These rounds were played by the built-in psychometric model, not a language model: " +
				"they show what the pipeline measures, never a result about models.\n\n")
		}
		fmt.Fprintf(b, "%d players of %d agents, %d rounds, endowment %d, %s pairing, memory %d rounds, rate shown: %v.\n\n",
			g.Players, g.Agents, g.Rounds, g.Endowment, g.Pairing, g.Memory, g.ShowRate)
		fmt.Fprintf(b, "Cooperation over the game: %s. To causes: %d; to players: %d; accounts conserved every round: %v. "+
			"Gini of the players' total payoffs: %s.\n\n",
			fmtNum(g.Cooperation, 3), g.CharityTotal, g.PayoffTotal, g.Conserved, fmtNum(g.Gini, 3))
		c := g.Conditional
		fmt.Fprintf(b, "Conditional cooperation: P(contribute | last partner contributed) = %s (n %d), P(contribute | last partner kept) = %s (n %d), difference %s.\n\n",
			fmtNum(c.AfterPartnerContributed, 3), c.NAfterContributed, fmtNum(c.AfterPartnerKept, 3), c.NAfterKept, fmtNum(c.Difference, 3))
		fmt.Fprintf(b, "Fit to the theory reference (the study's finding as a template, reference kind `theory`): r = %s with the signs "+
			"(+ UN, BE; − PO, AC, HE), r = %s with the cosine to the Self-Transcendence pole. Source: %s\n\n",
			fmtNum(g.Theory.RSigns, 3), fmtNum(g.Theory.RCosine, 3), g.Theory.Citation)
		base := gameFigureBase(g.Model)
		fmt.Fprintf(b, "![cooperation per round by value, %s](%s.png)\n\n", g.Model, base)
		b.WriteString("| persona | players | cooperation | mean payoff | given to causes |\n|---|---:|---:|---:|---:|\n")
		for _, p := range g.Payoffs {
			fmt.Fprintf(b, "| %s | %d | %s | %s | %d |\n", p.Persona, p.Players, fmtNum(p.Cooperation, 3), fmtNum(p.MeanPayoff, 1), p.Given)
		}
		b.WriteString("\n| round | cooperation | to causes | Gini | mean probable choice | distinct prompts | decision prompts |\n" +
			"|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, rr := range g.PerRound {
			fmt.Fprintf(b, "| %d | %s | %d | %s | %s | %d | %d |\n", rr.Round, fmtNum(rr.Cooperation, 3), rr.Charity,
				fmtNum(rr.Gini, 3), fmtNum(rr.MeanProbable, 2), rr.DistinctPrompts, rr.DecisionPrompts)
		}
	}
	b.WriteString("\nTables: `charity_rounds.csv` (every round, cooperation by value) and `charity_payoffs.csv`.\n")
	return b.String()
}

// Figure of cooperation per round: one line per persona, each value in its
// own clearly distinct colour (warm for the values of Openness and
// Self-Enhancement, greens and blues for Conservation, purples and brown
// for Self-Transcendence), the unprimed persona dashed grey, and the whole
// population in thick black. The legend sits in its own column.
const (
	coopWidth  = 8 * vg.Inch
	coopHeight = 4.5 * vg.Inch
	coopLegend = 1.9 * vg.Inch
)

var valueColors = [values.N]color.RGBA{
	{R: 200, G: 40, B: 40, A: 255},  // SD
	{R: 240, G: 140, B: 30, A: 255}, // ST
	{R: 200, G: 170, B: 0, A: 255},  // HE
	{R: 110, G: 170, B: 40, A: 255}, // AC
	{R: 20, G: 110, B: 50, A: 255},  // PO
	{R: 0, G: 160, B: 170, A: 255},  // SE
	{R: 40, G: 90, B: 200, A: 255},  // CO
	{R: 100, G: 60, B: 170, A: 255}, // TR
	{R: 210, G: 60, B: 160, A: 255}, // BE
	{R: 130, G: 80, B: 40, A: 255},  // UN
}

func valueColor(v values.Value) color.Color {
	if !v.Valid() {
		return color.RGBA{R: 140, G: 140, B: 140, A: 255}
	}
	return valueColors[v]
}

// PlotCooperation draws the cooperation rate per round by persona and
// overall, and writes base+".png" and base+".svg".
func PlotCooperation(g *CharityResult, base string) error {
	p := plot.New()
	title := fmt.Sprintf("Paired Charity Game, %s: cooperation by dominant value", g.Model)
	if g.Synthetic {
		title += " (synthetic respondents)"
	}
	p.Title.Text = title
	p.X.Label.Text = "round"
	p.Y.Label.Text = "share contributing"
	p.Y.Min, p.Y.Max = 0, 1
	p.X.Min, p.X.Max = 1, math.Max(2, float64(len(g.PerRound)))
	p.Add(plotter.NewGrid())
	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	legend.TextStyle.Font.Size = vg.Points(10)
	personas := append(values.All(), values.None)
	for _, v := range personas {
		var xys plotter.XYs
		for _, r := range g.PerRound {
			if x, ok := r.ByValue[v.Code()]; ok && !math.IsNaN(float64(x)) {
				xys = append(xys, plotter.XY{X: float64(r.Round), Y: float64(x)})
			}
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plot cooperation: %s: %w", v.Code(), err)
		}
		l.Color, l.Width = valueColor(v), vg.Points(1.5)
		if !v.Valid() {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		name := v.Name()
		if !v.Valid() {
			name = "no dominant value"
		}
		legend.Add(name, l)
	}
	var all plotter.XYs
	for _, r := range g.PerRound {
		if !math.IsNaN(float64(r.Cooperation)) {
			all = append(all, plotter.XY{X: float64(r.Round), Y: float64(r.Cooperation)})
		}
	}
	if len(all) > 0 {
		l, err := plotter.NewLine(all)
		if err != nil {
			return fmt.Errorf("plot cooperation: overall: %w", err)
		}
		l.Color, l.Width = color.Black, vg.Points(3)
		p.Add(l)
		legend.Add("all players", l)
	}
	for _, ext := range []string{"png", "svg"} {
		c, err := draw.NewFormattedCanvas(coopWidth, coopHeight, ext)
		if err != nil {
			return fmt.Errorf("plot cooperation: %w", err)
		}
		dc := draw.New(c)
		p.Draw(draw.Crop(dc, 0, -coopLegend, 0, 0))
		legend.Draw(draw.Crop(dc, coopWidth-coopLegend+vg.Points(6), 0, -vg.Points(12), -vg.Points(12)))
		path := base + "." + ext
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("plot cooperation: %w", err)
		}
		if _, err := c.WriteTo(f); err != nil {
			f.Close()
			return fmt.Errorf("plot cooperation: write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("plot cooperation: write %s: %w", path, err)
		}
	}
	return nil
}
