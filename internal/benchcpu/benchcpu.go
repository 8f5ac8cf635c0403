// Package benchcpu reports a benchmark's CPU time per operation.
//
// It is for benchmarks only and imports only the standard library.
package benchcpu

import (
	"syscall"
	"testing"
	"time"
)

// Report reports the process's CPU time (user and system, getrusage) per
// op as cpu-ns/op, from the call to the call of the function it returns
// (deferred): unlike ns/op, it does not grow when other processes hold the
// cores. Work of in-process servers counts too.
func Report(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() { b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op") }
}
