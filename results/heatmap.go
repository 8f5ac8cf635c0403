package results

import (
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Heatmap is one panel of a heat-map figure: a matrix with a label per row
// and per column, coloured on a fixed range so that panels side by side
// (a model and its human reference) read on the same scale.
type Heatmap struct {
	Title      string
	Rows, Cols []string
	Z          [][]float64 // Z[row][col]; NaN cells are grey
}

// Colour range of a figure: correlations run from −1 to 1 on a diverging
// blue–white–red scale (Moreland 2009, "Diverging color maps for scientific
// visualization"), agreement shares from 0 to 1 on the same scale centred
// at one half.
var (
	CorrRange      = [2]float64{-1, 1}
	AgreementRange = [2]float64{0, 1}
	nanColor       = color.RGBA{R: 255, G: 255, B: 255, A: 255}
)

// Cell sizes: large enough for a two-decimal label in 7-point type, small
// enough that a 19-column EBQ matrix fits a page.
const (
	cellW       = 0.42 * vg.Inch
	cellH       = 0.3 * vg.Inch
	barWidth    = 0.9 * vg.Inch
	maxAnnotate = 40 // rows above which cells are too small for numbers
)

// PlotHeatmaps draws the panels side by side, with one colour bar for the
// range lo..hi, and writes base+".png" and base+".svg".
func PlotHeatmaps(panels []Heatmap, lo, hi float64, base string) error {
	if len(panels) == 0 {
		return errors.New("heatmap: no panels")
	}
	cm := moreland.SmoothBlueRed()
	cm.SetMin(lo)
	cm.SetMax(hi)
	pal := cm.Palette(255)

	var plots []*plot.Plot
	var widths []vg.Length
	height := vg.Length(0)
	for _, pn := range panels {
		if len(pn.Z) != len(pn.Rows) || len(pn.Rows) == 0 {
			return fmt.Errorf("heatmap %q: %d rows of data for %d row labels", pn.Title, len(pn.Z), len(pn.Rows))
		}
		for r, row := range pn.Z {
			if len(row) != len(pn.Cols) {
				return fmt.Errorf("heatmap %q: row %d has %d cells for %d column labels", pn.Title, r, len(row), len(pn.Cols))
			}
		}
		p, err := heatPlot(pn, pal, lo, hi)
		if err != nil {
			return err
		}
		plots = append(plots, p)
		// Wide enough for the cells and row labels, and for the title.
		widths = append(widths, max(vg.Length(len(pn.Cols))*cellW+labelRoom(pn.Rows)+0.5*vg.Inch,
			vg.Length(len(pn.Title))*vg.Points(6)+0.3*vg.Inch))
		height = max(height, vg.Length(len(pn.Rows))*cellH+labelRoom(pn.Cols)+0.9*vg.Inch)
	}
	bar := plot.New()
	bar.HideX()
	bar.Y.Padding = 0
	bar.Title.Text = " "
	bar.Add(&plotter.ColorBar{ColorMap: cm, Vertical: true})
	bar.Y.Min, bar.Y.Max = lo, hi

	width := barWidth
	for _, w := range widths {
		width += w
	}
	draws := func(c vg.CanvasSizer) {
		dc := draw.New(c)
		x := vg.Length(0)
		for i, p := range plots {
			sub := draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{Min: vg.Point{X: x, Y: 0}, Max: vg.Point{X: x + widths[i], Y: height}}}
			p.Draw(sub)
			x += widths[i]
		}
		// The bar spans the cells' height, not the labels'.
		sub := draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{Min: vg.Point{X: x + 0.25*vg.Inch, Y: height / 4}, Max: vg.Point{X: x + barWidth, Y: height * 3 / 4}}}
		bar.Draw(sub)
	}
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(96))
	draws(img)
	svg := vgsvg.New(width, height)
	draws(svg)
	for _, out := range []struct {
		path string
		w    io.WriterTo
	}{{base + ".png", fastPNG{img}}, {base + ".svg", svg}} {
		if err := writeTo(out.path, out.w); err != nil {
			return fmt.Errorf("heatmap: %w", err)
		}
	}
	return nil
}

// fastPNG encodes with the fastest compression: heat-maps are flat colour
// fields that compress well anyway, and a report writes dozens of them.
type fastPNG struct{ c *vgimg.Canvas }

func (f fastPNG) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	err := enc.Encode(cw, f.c.Image())
	return cw.n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeTo(path string, w io.WriterTo) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := w.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// labelRoom is the room tick labels need: about 5.5 points per character
// of the longest, in the 10-point tick font.
func labelRoom(labels []string) vg.Length {
	n := 0
	for _, l := range labels {
		n = max(n, len(l))
	}
	return vg.Length(n) * vg.Points(5.5)
}

// grid adapts a panel to plotter.GridXYZ with row 0 drawn at the top.
type grid [][]float64

func (g grid) Dims() (c, r int)   { return len(g[0]), len(g) }
func (g grid) Z(c, r int) float64 { return g[len(g)-1-r][c] }
func (g grid) X(c int) float64    { return float64(c) }
func (g grid) Y(r int) float64    { return float64(r) }

// labels ticks integer positions with names.
type labels []string

func (l labels) Ticks(lo, hi float64) []plot.Tick {
	out := make([]plot.Tick, len(l))
	for i, s := range l {
		out[i] = plot.Tick{Value: float64(i), Label: s}
	}
	return out
}

func heatPlot(pn Heatmap, pal palette.Palette, lo, hi float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = pn.Title
	p.Title.TextStyle.Font.Size = vg.Points(11)
	hm := plotter.NewHeatMap(grid(pn.Z), pal)
	hm.Min, hm.Max = lo, hi
	hm.NaN = nanColor
	hm.Underflow, hm.Overflow = pal.Colors()[0], pal.Colors()[len(pal.Colors())-1]
	p.Add(hm)

	rows := make(labels, len(pn.Rows))
	for i, r := range pn.Rows {
		rows[len(pn.Rows)-1-i] = r
	}
	p.Y.Tick.Marker = rows
	p.X.Tick.Marker = labels(pn.Cols)
	long := 0
	for _, c := range pn.Cols {
		long = max(long, len(c))
	}
	if long > 3 {
		p.X.Tick.Label.Rotation = math.Pi / 2
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
	}
	p.X.Padding, p.Y.Padding = 0, 0

	if len(pn.Rows) <= maxAnnotate {
		var xys plotter.XYs
		var text []string
		for r, row := range pn.Z {
			for c, z := range row {
				if math.IsNaN(z) {
					continue
				}
				xys = append(xys, plotter.XY{X: float64(c), Y: float64(len(pn.Z) - 1 - r)})
				text = append(text, strconv.FormatFloat(z, 'f', 2, 64))
			}
		}
		if len(xys) > 0 {
			lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: text})
			if err != nil {
				return nil, fmt.Errorf("heatmap %q: %w", pn.Title, err)
			}
			mid := (lo + hi) / 2
			span := (hi - lo) / 2
			i := 0
			for _, row := range pn.Z {
				for _, z := range row {
					if math.IsNaN(z) {
						continue
					}
					st := &lb.TextStyle[i]
					st.Font.Size = vg.Points(7)
					st.XAlign, st.YAlign = draw.XCenter, draw.YCenter
					st.Color = color.Black
					if math.Abs(z-mid) > 0.6*span {
						st.Color = color.White
					}
					i++
				}
			}
			p.Add(lb)
		}
	}
	return p, nil
}
