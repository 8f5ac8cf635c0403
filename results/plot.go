package results

import (
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Colours of the value map: the human reference in grey so the model, the
// thing being judged, stands out.
var (
	humanColor  = color.RGBA{R: 90, G: 90, B: 90, A: 255}
	modelColor  = color.RGBA{R: 200, G: 60, B: 40, A: 255}
	circleColor = color.RGBA{R: 200, G: 200, B: 200, A: 255}
)

// mapSize is the side of the square figure: large enough for ten labelled
// points on a page, small enough for a report column.
const mapSize = 5 * vg.Inch

// PlotMDS draws a value map: the human configuration as hollow labelled
// markers, the model's fitted configuration as filled labelled markers, and
// the idealised unit circle faintly behind them, on equal axes. It writes
// base+".png" and base+".svg". The configurations are p×2, as MDSMap
// returns them, with one label per row.
func PlotMDS(humanCfg, modelFitted *mat.Dense, labels []string, title string, base string) error {
	if humanCfg == nil || modelFitted == nil {
		return errors.New("plot mds: nil configuration")
	}
	hr, hc := humanCfg.Dims()
	mr, mc := modelFitted.Dims()
	if hc != 2 || mc != 2 || hr != mr {
		return fmt.Errorf("plot mds: configurations are %d×%d and %d×%d, want two p×2", hr, hc, mr, mc)
	}
	if len(labels) != hr {
		return fmt.Errorf("plot mds: %d labels for %d points", len(labels), hr)
	}

	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "dimension 1"
	p.Y.Label.Text = "dimension 2"

	circle := make(plotter.XYs, 181)
	for i := range circle {
		a := 2 * math.Pi * float64(i) / float64(len(circle)-1)
		circle[i] = plotter.XY{X: math.Cos(a), Y: math.Sin(a)}
	}
	ring, err := plotter.NewLine(circle)
	if err != nil {
		return fmt.Errorf("plot mds: circle: %w", err)
	}
	ring.Color = circleColor
	ring.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	p.Add(ring)

	extent := 1.0
	add := func(cfg *mat.Dense, name string, glyph draw.GlyphDrawer, c color.Color, offset vg.Point) error {
		xys := make(plotter.XYs, hr)
		for i := range xys {
			xys[i] = plotter.XY{X: cfg.At(i, 0), Y: cfg.At(i, 1)}
			extent = math.Max(extent, math.Max(math.Abs(xys[i].X), math.Abs(xys[i].Y)))
		}
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			return fmt.Errorf("plot mds: %s: %w", name, err)
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(4), Shape: glyph}
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return fmt.Errorf("plot mds: %s labels: %w", name, err)
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].Color = c
		}
		lb.Offset = offset
		p.Add(sc, lb)
		p.Legend.Add(name, sc)
		return nil
	}
	if err := add(humanCfg, "human", draw.RingGlyph{}, humanColor, vg.Point{X: vg.Points(5), Y: vg.Points(3)}); err != nil {
		return err
	}
	if err := add(modelFitted, "model", draw.CircleGlyph{}, modelColor, vg.Point{X: vg.Points(5), Y: vg.Points(-10)}); err != nil {
		return err
	}

	// Equal ranges on both axes keep angles and distances honest; the
	// margin leaves room for labels at the edge and for the legend in a
	// corner, where points near a circle do not reach.
	lim := 1.3 * extent
	p.X.Min, p.X.Max = -lim, lim
	p.Y.Min, p.Y.Max = -lim, lim
	p.Legend.Top = true
	p.Legend.Left = true

	for _, ext := range []string{".png", ".svg"} {
		if err := p.Save(mapSize, mapSize, base+ext); err != nil {
			return fmt.Errorf("plot mds: save %s: %w", base+ext, err)
		}
	}
	return nil
}
