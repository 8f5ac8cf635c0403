package questionnaires

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/BurntSushi/toml"
)

// Write writes in in the instrument file format, which Parse reads back
// into the same instrument.
func Write(w io.Writer, in *Instrument) error {
	if _, err := fmt.Fprintf(w, "# Instrument %q as used in this run.\n", in.Name); err != nil {
		return err
	}
	return toml.NewEncoder(w).Encode(in)
}

// StoredPath is where a results directory dir keeps the file of the
// instrument called name (one that is not built in), so that the run can
// be analysed again without the original file.
func StoredPath(dir, name string) string {
	return filepath.Join(dir, "instruments", name+".toml")
}
