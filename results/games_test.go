package results

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/games"
)

// TestGamesFiles: a game's figure, its CSV tables and its report section
// are written from the computed results.
func TestGamesFiles(t *testing.T) {
	st := gameStudy(t, games.Random)
	c := analysis.NewCollector(st.Pool.Size(), st.Plans)
	for _, b := range gameBatches(st) {
		if err := c.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	out, err := st.Compute(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := writeGames(dir, &out.Results); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"charity_cooperation_m.png", "charity_cooperation_m.svg", "charity_rounds.csv", "charity_payoffs.csv"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Size() == 0 {
			t.Errorf("%s: got %v, want a file", f, err)
		}
	}
	rounds, _ := os.ReadFile(filepath.Join(dir, "charity_rounds.csv"))
	if got := strings.Count(string(rounds), "\n"); got != 7 {
		t.Errorf("charity_rounds.csv: got %d lines, want a header and 6 rounds", got)
	}
	sec := gamesSection(&out.Results)
	for _, want := range []string{"## Paired Charity Game", "synthetic respondents", "charity_cooperation_m.png", "| persona |", "Conditional cooperation"} {
		if !strings.Contains(sec, want) {
			t.Errorf("report section lacks %q", want)
		}
	}
}
