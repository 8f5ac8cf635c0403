package simbench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteText writes the report as the tables `society bench` prints: the
// note, the machine, a row per population with its warnings, then each
// other harness's part in its own words.
func (r *Report) WriteText(w io.Writer) {
	m := r.Machine
	fmt.Fprintln(w, r.Note)
	fmt.Fprintf(w, "\nMachine: %d × %s, %s memory, %s %s, kernel %s, load average %s (before), %s (after)\n\n",
		m.CPUs, m.CPUModel, gib(m.MemoryBytes), m.GoVersion, m.OS, m.Kernel, fmtLoad(m.LoadBefore), fmtLoad(m.LoadAfter))
	if len(r.Runs) > 0 {
		fmt.Fprintln(w, "N agents × PVQ-40, whole pipeline per N in a fresh process (embedded NATS, JetStream answers, analysis, results written):")
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "agents\tanswers\twall s\tanswers/s\tpeak RSS\tCPU s\tanswers in s\tanalysis+write s\tno-bus s\tratio\tanswer ratio\tmsg bytes\tmsgs\tNATS msgs/s\tNATS s\tJetStream s\t")
		for _, x := range r.Runs {
			fmt.Fprintf(tw, "%d\t%d\t%.2f\t%s\t%s\t%.1f\t%.2f\t%.2f\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t\n",
				x.Agents, x.Answers, x.WallSeconds, si(x.AnswersPerSecond), mib(x.PeakRSSBytes), x.CPUSeconds,
				x.AnswerSeconds, x.FinishSeconds, optF(x.NoBusSeconds, "%.2f"), optF(x.BaselineRatio, "%.2f×"),
				optF(x.AnswerRatio, "%.2f×"), x.MessageBytes, x.Messages, si(x.NATSMsgsPerSecond),
				optF(x.NATSSeconds, "%.3f"), optF(x.JetStreamSeconds, "%.3f"))
		}
		tw.Flush()
		for _, x := range r.Runs {
			if x.SameResults != nil && !*x.SameResults {
				fmt.Fprintf(w, "WARNING: %d agents: the pipeline and the no-bus run wrote different results.json\n", x.Agents)
			}
		}
	}
	if r.ModelPath != nil {
		r.ModelPath.WriteText(w)
	}
	if r.Calls != nil {
		r.Calls.WriteText(w)
	}
}

// fmtLoad writes load averages with two decimals, "unknown" when unread.
func fmtLoad(l []float64) string {
	if len(l) == 0 {
		return "unknown"
	}
	s := make([]string, len(l))
	for i, x := range l {
		s[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(s, " ")
}

// optF writes x in format, or "-" for a figure not measured (0).
func optF(x float64, format string) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf(format, x)
}

// mib writes bytes in MiB, "-" when not measured.
func mib(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// gib writes bytes in GiB with one decimal.
func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// si writes a rate with a k or M suffix.
func si(x float64) string {
	switch {
	case x == 0:
		return "-"
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}
