package population

import (
	"bytes"
	"embed"
	"encoding/csv"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/society-sim/society/values"
)

// The human figures are embedded so that a run never depends on files next
// to the binary; data/PROVENANCE.md says where they come from.
//
//go:embed data/dominant_value_unique_max.csv data/value_means_6pt.csv
var dataFS embed.FS

// DefaultShares is the sample whose dominant-value split populations use
// unless a scenario names another: the GSS 2012 US sample, the largest US
// sample available.
const DefaultShares = "gss2012"

// DefaultNoDominant is the share of people without a dominant value that the
// study reports (about 53%); H-Even and H-NP use it unless told otherwise.
const DefaultNoDominant = 0.53

// Shares is how a human sample divides into dominant values. Fractions are in
// [0, 1]; NoDominant plus the ten Dominant shares is 1 up to rounding in the
// source table.
type Shares struct {
	Source     string
	N          int // respondents in the sample
	NoDominant float64
	Dominant   [values.N]float64 // in circular value order
}

type humanData struct {
	shares map[string]Shares
	means  map[string][values.N]float64
	order  []string
}

var loadHuman = sync.OnceValues(func() (*humanData, error) {
	d := &humanData{shares: map[string]Shares{}, means: map[string][values.N]float64{}}
	rows, err := readTable("data/dominant_value_unique_max.csv", []string{"n", "no_dominant"})
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		sh := Shares{Source: r.name, N: int(r.extra[0]), NoDominant: r.extra[1] / 100}
		for i, p := range r.values {
			sh.Dominant[i] = p / 100
		}
		d.shares[r.name] = sh
		d.order = append(d.order, r.name)
	}
	rows, err = readTable("data/value_means_6pt.csv", nil)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		d.means[r.name] = r.values
	}
	return d, nil
})

type tableRow struct {
	name   string
	extra  []float64
	values [values.N]float64
}

// readTable reads an embedded CSV whose first column names the sample, then
// the extra columns, then one column per value in circular order.
func readTable(name string, extra []string) ([]tableRow, error) {
	raw, err := dataFS.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	want := append(append([]string{""}, extra...), values.Codes()...)
	if len(recs) < 2 || !slices.Equal(recs[0], want) {
		return nil, fmt.Errorf("read %s: header %v, want %v", name, recs[0], want)
	}
	var out []tableRow
	for li, rec := range recs[1:] {
		r := tableRow{name: rec[0]}
		for j, cell := range rec[1:] {
			x, err := strconv.ParseFloat(strings.TrimSpace(cell), 64)
			if err != nil {
				return nil, fmt.Errorf("read %s: line %d: column %s: %w", name, li+2, want[j+1], err)
			}
			if j < len(extra) {
				r.extra = append(r.extra, x)
			} else {
				r.values[j-len(extra)] = x
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// ShareSources names the human samples with dominant-value shares, in the
// order of the embedded table.
func ShareSources() []string {
	d, err := loadHuman()
	if err != nil {
		return nil
	}
	return slices.Clone(d.order)
}

// HumanShares returns the dominant-value shares of the named sample.
func HumanShares(source string) (Shares, error) {
	d, err := loadHuman()
	if err != nil {
		return Shares{}, fmt.Errorf("human shares: %w", err)
	}
	sh, ok := d.shares[source]
	if !ok {
		return Shares{}, fmt.Errorf("human shares: unknown source %q (want one of %s)", source, strings.Join(d.order, ", "))
	}
	return sh, nil
}

// HumanMeans returns the mean value scores (1–6 scale) of the named sample.
func HumanMeans(source string) ([values.N]float64, error) {
	d, err := loadHuman()
	if err != nil {
		return [values.N]float64{}, fmt.Errorf("human means: %w", err)
	}
	m, ok := d.means[source]
	if !ok {
		return m, fmt.Errorf("human means: unknown source %q (want one of %s)", source, strings.Join(d.order, ", "))
	}
	return m, nil
}
