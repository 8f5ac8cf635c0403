package results

import (
	"compress/gzip"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/society-sim/society/analysis"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// scoresHeader is the first line of scores.csv.
const scoresHeader = "model,strategy,agent,persona,priming,style,instrument,scale,raw,mrat,answered,items"

// scoreRows is the number of rows scores.csv will have, to choose between
// scores.csv and scores.csv.gz before writing.
func scoreRows(o *analysis.Output) int64 {
	var n int64
	pool := o.Study.Pool
	for _, sh := range scoredSheets(o) {
		for si, m := range pool.Strategies {
			if _, ok := analysis.ScopedStrategy(m.Name, sh.Model); ok {
				n += int64(pool.StrategySize(si)) * int64(len(sh.Instrument.Keys()))
			}
		}
	}
	return n
}

// scoredSheets are the sheets scores.csv scores: every questionnaire
// answered outside the games.
func scoredSheets(o *analysis.Output) []*analysis.Sheet {
	var out []*analysis.Sheet
	for _, sh := range o.Collector.Sheets(o.Study.Plans) {
		if sh.Round == 0 && sh.Instrument.Kind != questionnaires.KindGame {
			out = append(out, sh)
		}
	}
	return out
}

// valueKeys is, per item, the value an instrument's item measures when
// every item measures a value (the instruments analysis scores as value
// instruments, in Study.Compute); nil otherwise.
func valueKeys(in *questionnaires.Instrument) []int {
	keyOf := make([]int, len(in.Items))
	for i, it := range in.Items {
		v, err := values.Parse(it.Key)
		if err != nil || !v.Valid() {
			return nil
		}
		keyOf[i] = int(v)
	}
	return keyOf
}

// writeScores writes scores.csv: one row per model, strategy, agent,
// instrument and scale (an item key). raw is the mean of the agent's valid
// answers to the scale's items, reverse-keyed items recoded
// (questionnaires.Instrument.Score); mrat, for value instruments only, is
// that mean centred on the agent's mean over all value items (MRAT,
// analysis.ValueScores), NA when some value has no valid answer, as the
// analysis then leaves the agent out. answered counts the valid answers
// among the scale's items asked, items the items asked. An agent that
// serves several strategies has a row under each.
func writeScores(w io.Writer, o *analysis.Output) error {
	if _, err := io.WriteString(w, scoresHeader+"\n"); err != nil {
		return err
	}
	pool := o.Study.Pool
	priming, style := map[string]string{}, map[string]string{}
	for _, m := range o.Study.Models {
		priming[m.Name], style[m.Name] = m.Priming, m.Style
	}
	// Rows are built as bytes, each field quoted once per sheet as
	// encoding/csv would (csvField): a run of a million agents has ten
	// million rows.
	var buf, prefix []byte
	for _, sh := range scoredSheets(o) {
		in := sh.Instrument
		n, keys := len(in.Items), in.Keys()
		keyOf := valueKeys(in)
		asked := make([]int, len(keys))
		for _, it := range sh.Items {
			if k := in.KeyIndex(it); k >= 0 {
				asked[k]++
			}
		}
		scale := make([]string, len(keys))
		keyValue := make([]int, len(keys))
		for k, key := range keys {
			scale[k] = csvField(key)
			if v, err := values.Parse(key); err == nil && v.Valid() {
				keyValue[k] = int(v)
			}
		}
		sheetPart := "," + csvField(priming[sh.Model]) + "," + csvField(style[sh.Model]) + "," + csvField(in.Name) + ","
		answers := make([]int, n)
		answered := make([]int, len(keys))
		var raw []float64
		var vraw, mrat [values.N]float64
		for si, m := range pool.Strategies {
			strategy, ok := analysis.ScopedStrategy(m.Name, sh.Model)
			if !ok {
				continue
			}
			lead := csvField(sh.Model) + "," + csvField(strategy) + ","
			for a := range pool.Size() {
				if !pool.In(si, a) {
					continue
				}
				codes := sh.Codes[a*n : (a+1)*n]
				clear(answered)
				for i, c := range codes {
					answers[i] = questionnaires.Missing
					if c != 0 {
						answers[i] = int(c) - 1 + in.Scale.Min
						if k := in.KeyIndex(i); k >= 0 {
							answered[k]++
						}
					}
				}
				raw = in.ScoreInto(raw, answers)
				centred := keyOf != nil && analysis.ValueScores(keyOf, codes, vraw[:], mrat[:])
				prefix = append(prefix[:0], lead...)
				prefix = strconv.AppendInt(prefix, int64(a), 10)
				prefix = append(prefix, ',')
				prefix = append(prefix, pool.Persona[a].Code()...)
				prefix = append(prefix, sheetPart...)
				buf = buf[:0]
				for k := range keys {
					buf = append(buf, prefix...)
					buf = append(buf, scale[k]...)
					buf = append(buf, ',')
					buf = appendNum(buf, raw[k])
					buf = append(buf, ',')
					if centred {
						buf = appendNum(buf, mrat[keyValue[k]])
					} else {
						buf = append(buf, "NA"...)
					}
					buf = append(buf, ',')
					buf = strconv.AppendInt(buf, int64(answered[k]), 10)
					buf = append(buf, ',')
					buf = strconv.AppendInt(buf, int64(asked[k]), 10)
					buf = append(buf, '\n')
				}
				if _, err := w.Write(buf); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// appendNum appends x with four decimals, or NA when it is not a number
// (as fmtNum writes it).
func appendNum(dst []byte, x float64) []byte {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return append(dst, "NA"...)
	}
	return strconv.AppendFloat(dst, x, 'f', 4, 64)
}

// writeScoresGzip writes scores.csv gzip-compressed, for runs whose table
// is too large to keep as text.
func writeScoresGzip(w io.Writer, o *analysis.Output) error {
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err := writeScores(zw, o); err != nil {
		return err
	}
	return zw.Close()
}

// itemsHeader is the first line of items.csv.
const itemsHeader = "instrument,kind,item,key,facet,reverse,text,scale_min,scale_max,scale_labels"

// runInstruments are the instruments of the run's plans, each once, in
// plan order.
func runInstruments(o *analysis.Output) []*questionnaires.Instrument {
	var out []*questionnaires.Instrument
	for _, p := range o.Study.Plans {
		if !slices.ContainsFunc(out, func(in *questionnaires.Instrument) bool { return in.Name == p.Instrument.Name }) {
			out = append(out, p.Instrument)
		}
	}
	for i := range o.Study.Games {
		g := &o.Study.Games[i]
		for _, in := range []*questionnaires.Instrument{g.Probable, g.Decision} {
			if !slices.ContainsFunc(out, func(x *questionnaires.Instrument) bool { return x.Name == in.Name }) {
				out = append(out, in)
			}
		}
	}
	return out
}

// writeItems writes items.csv: every item of every instrument of the run,
// with its key (the value or scale it measures), facet, reverse keying,
// text and its instrument's scale; scale_labels lists "number=label" for
// every point of the scale, separated by " | ".
func writeItems(w io.Writer, o *analysis.Output) error {
	t := newCSVTable(w, itemsHeader)
	for _, in := range runInstruments(o) {
		labels := make([]string, 0, in.Scale.Points())
		for x := in.Scale.Min; x <= in.Scale.Max; x++ {
			labels = append(labels, strconv.Itoa(x)+"="+in.Scale.Label(x))
		}
		lab := strings.Join(labels, " | ")
		for _, it := range in.Items {
			t.row(in.Name, string(in.Kind), strconv.Itoa(it.ID), it.Key, it.Facet, strconv.FormatBool(it.Reverse), it.Text,
				strconv.Itoa(in.Scale.Min), strconv.Itoa(in.Scale.Max), lab)
		}
	}
	return t.close()
}
