package results

import (
	"bytes"
	"encoding/csv"
	"io"
	"strings"
)

// csvTable writes a CSV table with encoding/csv, which quotes any field
// holding a comma, a quote or a line break, so that a name from a scenario
// can never shift a row's columns.
type csvTable struct{ cw *csv.Writer }

func newCSVTable(w io.Writer, header string) *csvTable {
	t := &csvTable{csv.NewWriter(w)}
	t.cw.Write(strings.Split(header, ","))
	return t
}

func (t *csvTable) row(fields ...string) { t.cw.Write(fields) }

// close flushes the table and returns the first write error.
func (t *csvTable) close() error {
	t.cw.Flush()
	return t.cw.Error()
}

// csvField is s as encoding/csv writes it as one field: quoted when it
// must be. The hand-built rows of answers.csv and population.csv use it for
// their text fields, once per name rather than once per row.
func csvField(s string) string {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.Write([]string{s})
	cw.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}
