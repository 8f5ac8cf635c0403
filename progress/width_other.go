//go:build !unix

package progress

import "io"

// termWidth is 0 (unknown) where the terminal's size is not read.
func termWidth(io.Writer) int { return 0 }
