// Package proc tells whether a process still exists, for the cleanup of
// what a process that died (kill -9) left behind.
//
// It imports only the standard library.
package proc

import (
	"errors"
	"os"
	"syscall"
)

// Alive reports whether process pid may exist: only a process known to be
// gone counts as dead. Signal 0 checks without sending anything (EPERM: it
// exists under another user); where signals are not supported, every
// process counts as alive.
func Alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH)
}
