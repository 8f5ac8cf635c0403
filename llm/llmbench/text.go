package llmbench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the model path's phases as `society bench` prints them:
// the society client beside the bare one in each query mode, then per
// mode their ratios and whether the client reached its concurrency, with
// a warning wherever the client's and the server's counts of calls differ.
func (mp *ModelPath) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\nModel path: %d agents × %d PVQ-40 items → client → model server with S = %d slots and L = %v (ideal S/L = %.0f calls/s), "+
		"client concurrency %d; each phase against a fresh server, after %d unmeasured warm-up calls through each client; "+
		"the bare client is net/http making the same calls:\n\n",
		mp.Agents, mp.Items, mp.Slots, time.Duration(mp.LatencySeconds*float64(time.Second)), mp.IdealCallsPerSecond, mp.Concurrency, mp.WarmUpCalls)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tclient\tcalls\twall s\tleast s\tcalls/s\t% of S/L\tsteady %\tpeak in flight\tin service\tclient CPU µs/call\tserver CPU µs/call\tretries\t")
	for _, c := range []Comparison{mp.Sample, mp.Distribution} {
		for _, x := range []Run{c.Society, c.Bare} {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t%.0f\t%.1f%%\t%s\t%d\t%d\t%.0f\t%.0f\t%d\t\n",
				c.Mode, x.Client, x.Calls, x.Seconds, x.MinSeconds, x.CallsPerSecond, 100*x.Efficiency,
				optF(100*x.SteadyEfficiency, "%.1f%%"), x.PeakInFlight, x.PeakInService, x.ClientCPUMicros, x.ServerCPUMicros, x.Retries)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, c := range []Comparison{mp.Sample, mp.Distribution} {
		for _, x := range []Run{c.Society, c.Bare} {
			if x.Calls != x.ServerRequests {
				fmt.Fprintf(w, "  WARNING: %s mode, %s client: %d calls counted by the client, %d requests by the server\n",
					c.Mode, x.Client, x.Calls, x.ServerRequests)
			}
		}
		want := min(int64(mp.Concurrency), c.Society.Calls)
		verdict := "reached"
		if c.Society.PeakInFlight < want {
			verdict = "NOT reached"
		}
		fmt.Fprintf(w, "  %-12s society/bare: calls/s %.3f×, wall time %.3f×, client CPU per call %.2f×; peak in flight %d, min(concurrency, calls) = %d %s\n",
			c.Mode, c.RateRatio, c.SecondsRatio, c.CPURatio, c.Society.PeakInFlight, want, verdict)
	}
}

// WriteText writes the design's model calls as `society bench` prints
// them: the design, the calls of each population in each query mode, and
// the check against the model server.
func (c *Calls) WriteText(w io.Writer) {
	d := c.Design
	fmt.Fprintf(w, "\nModel calls of the study's design: %d prompts (ten values and no priming), %d items per respondent "+
		"(pvq40 %d, bfi2 %d, prosocial %d, donation %d, charity %d+%d, ebq %d, persona statements %d × %d behaviours), N = %d:\n\n",
		d.Prompts, d.Items, d.Instruments["pvq40"], d.Instruments["bfi2"], d.Instruments["prosocial"], d.Instruments["donation"],
		d.Instruments["charity"], d.Instruments["charity_decision"], d.Instruments["ebq"], d.PersonaK, d.Behaviours, d.Repetitions)
	fmt.Fprintf(w, "  %-28s %18s %18s %14s\n", "population", "per-answer", fmt.Sprintf("n-sampling (n=%d)", d.Repetitions), "distribution")
	for _, r := range c.Counts {
		fmt.Fprintf(w, "  %-28s %18s %18s %14s\n", r.Label, group(r.PerAnswer), group(r.NSampling), group(r.Distribution))
	}
	if len(c.Check) > 0 {
		fmt.Fprintf(w, "\nChecked on %d agents (H-NP) × %d items of the built-in instruments against the model server:\n", c.Check[0].Agents, c.Check[0].Items)
		for _, k := range c.Check {
			verdict := "match"
			if !k.Match {
				verdict = "MISMATCH"
			}
			fmt.Fprintf(w, "  %-22s predicted %6d, client calls %6d, server requests %6d: %s\n", k.Mode, k.Predicted, k.ClientCalls, k.ServerRequests, verdict)
		}
	}
}

// optF writes x in format, or "-" for a figure not measured (0).
func optF(x float64, format string) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf(format, x)
}

// group writes an integer with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
