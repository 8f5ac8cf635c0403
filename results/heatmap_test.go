package results

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/society-sim/society/values"
)

func TestPlotHeatmaps(t *testing.T) {
	dir := t.TempDir()
	if d := os.Getenv("SOCIETY_KEEP_FIGURES"); d != "" {
		dir = d
	}
	model := make([][]float64, values.N)
	human := make([][]float64, values.N)
	cols := []string{"A", "C", "E", "N", "O"}
	for i := range model {
		model[i] = make([]float64, len(cols))
		human[i] = make([]float64, len(cols))
		for j := range cols {
			model[i][j] = math.Cos(float64(i-2*j)) * 0.8
			human[i][j] = math.Sin(float64(i+j)) * 0.5
		}
	}
	model[3][2] = math.NaN()
	base := filepath.Join(dir, "heat")
	err := PlotHeatmaps([]Heatmap{
		{Title: "model", Rows: values.Codes(), Cols: cols, Z: model},
		{Title: "human (theory)", Rows: values.Codes(), Cols: cols, Z: human},
	}, CorrRange[0], CorrRange[1], base)
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".png", ".svg"} {
		st, err := os.Stat(base + ext)
		if err != nil || st.Size() < 1000 {
			t.Errorf("%s: got %v, size %d; want a figure", ext, err, st.Size())
		}
	}
	if err := PlotHeatmaps([]Heatmap{{Title: "bad", Rows: []string{"a"}, Cols: []string{"x"}, Z: [][]float64{{1, 2}}}}, 0, 1, base); err == nil {
		t.Error("got no error for a ragged panel")
	}
	if err := PlotHeatmaps(nil, 0, 1, base); err == nil {
		t.Error("got no error for no panels")
	}
}
