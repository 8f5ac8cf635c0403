package sim

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/society-sim/society/scenarios"
)

// Per-agent memory of a run: the agent goroutine's stack and descriptor
// (about 2.8 KiB), the agent and pool records, one answer byte per item and
// model, and two score vectors at analysis time: 3.7 KiB measured at
// 1,000,000 agents (BENCHMARKS.md). The check only refuses runs that cannot fit.
const bytesPerAgent = 4 << 10

// checkMemory refuses a population that cannot fit in this machine's
// memory, before anything starts, naming the field to change.
func checkMemory(sc *scenarios.Scenario, answersPerAgent int) error {
	total := MemTotal()
	if total == 0 {
		return nil
	}
	need := int64(sc.Population.Size) * (bytesPerAgent + int64(answersPerAgent))
	if need > total*8/10 {
		return sc.Problem("population.size", fmt.Sprintf("%d agents need about %s of memory, more than this machine can give (%s in all); use at most %d",
			sc.Population.Size, gib(need), gib(total), total*8/10/(bytesPerAgent+int64(answersPerAgent))))
	}
	return nil
}

func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// MemTotal reads the machine's memory from /proc/meminfo; 0 when unknown.
func MemTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
