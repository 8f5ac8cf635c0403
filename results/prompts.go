package results

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/society-sim/society/analysis"
)

// promptsHeader is the first line of prompts.csv.
const promptsHeader = "model,backend,mode,endpoint,persona,style,instrument,item,round,system,user,agents,samples"

// writePrompts writes prompts.csv: one row per distinct prompt the run's
// agents asked a model (analysis.PromptRow), its texts as sent. samples
// is empty outside sample mode.
func writePrompts(w io.Writer, rows []analysis.PromptRow) error {
	t := newCSVTable(w, promptsHeader)
	for _, r := range rows {
		samples := ""
		if r.Samples > 0 {
			samples = strconv.Itoa(r.Samples)
		}
		t.row(r.Model, r.Backend, r.Mode, r.Endpoint, r.Persona, r.Style, r.Instrument, strconv.Itoa(r.Item), strconv.Itoa(r.Round),
			r.System, r.User, strconv.Itoa(r.Agents), samples)
	}
	return t.close()
}

// ReadPrompts reads the prompts.csv of the results directory dir back,
// so that a rebuild ("society report") keeps it: the prompts were
// recorded as the agents asked them (or rebuilt by the process that
// wrote the results, sim.RebuildPrompts), and those of a test-primed
// model cannot be derived from the answers. A directory without one gives nil and no error; a malformed
// file is an error naming its line and column.
func ReadPrompts(dir string) ([]analysis.PromptRow, error) {
	path := filepath.Join(dir, "prompts.csv")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(f) // every row has the header's fields
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !slices.Equal(head, strings.Split(promptsHeader, ",")) {
		return nil, fmt.Errorf("%s: line 1: header is not %s", path, promptsHeader)
	}
	var out []analysis.PromptRow
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r := analysis.PromptRow{Model: rec[0], Backend: rec[1], Mode: rec[2], Endpoint: rec[3], Persona: rec[4], Style: rec[5],
			Instrument: rec[6], System: rec[9], User: rec[10]}
		ints := []struct {
			col int
			dst *int
		}{{7, &r.Item}, {8, &r.Round}, {11, &r.Agents}, {12, &r.Samples}}
		for _, c := range ints {
			if c.col == 12 && rec[c.col] == "" {
				continue
			}
			if *c.dst, err = strconv.Atoi(rec[c.col]); err != nil {
				line, _ := cr.FieldPos(c.col)
				return nil, fmt.Errorf("%s: line %d: %s: %q is not an integer", path, line, head[c.col], rec[c.col])
			}
		}
		out = append(out, r)
	}
}
