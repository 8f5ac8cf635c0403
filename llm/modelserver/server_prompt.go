package modelserver

import (
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
	"github.com/society-sim/society/values"
)

// srvIndex recognises the prompts agent.Render writes: every value prefix
// (both styles) and every item of the built-in instruments. Prefixes and
// item texts are single lines, so a prompt is first read line by line; a
// substring search covers clients that join them with other text.
type srvIndex struct {
	prefixes map[string]agent.Persona
	items    map[string]srvItemRef
	// byLength lists the prefixes longest first, so that a description
	// prefix wins over the name prefix it begins with.
	byLength []string
	itemList []string
}

type srvItemRef struct {
	in   *questionnaires.Instrument
	item int
}

func srvNewIndex() *srvIndex {
	x := &srvIndex{prefixes: map[string]agent.Persona{}, items: map[string]srvItemRef{}}
	for _, style := range []agent.Style{agent.StyleDescription, agent.StyleName} {
		for _, v := range values.All() {
			p := agent.Persona{Value: v, Style: style}
			if text := agent.Prefix(p); text != "" {
				x.prefixes[text] = p
				x.byLength = append(x.byLength, text)
			}
		}
	}
	sort.SliceStable(x.byLength, func(i, j int) bool { return len(x.byLength[i]) > len(x.byLength[j]) })
	for _, name := range questionnaires.Names() {
		in, err := questionnaires.Builtin(name)
		if err != nil {
			continue
		}
		for i, item := range in.Items {
			text := strings.TrimSpace(item.Text)
			if _, dup := x.items[text]; !dup {
				x.items[text] = srvItemRef{in: in, item: i}
				x.itemList = append(x.itemList, text)
			}
		}
	}
	return x
}

// srvQuestion is what the server understood of a prompt.
type srvQuestion struct {
	persona agent.Persona
	in      *questionnaires.Instrument // nil when the item is unknown
	item    int
	lo, hi  int      // the answer scale
	labels  []string // one per point, or nil
}

func (x *srvIndex) understand(prompt string) srvQuestion {
	q := srvQuestion{persona: agent.Persona{Value: values.None, Style: agent.StyleNone}, item: -1}
	prompt = strings.ReplaceAll(prompt, "\r\n", "\n")
	foundPrefix := false
	for line := range strings.SplitSeq(prompt, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if p, ok := x.prefixes[line]; ok && !foundPrefix {
			q.persona, foundPrefix = p, true
			continue
		}
		if ref, ok := x.items[line]; ok {
			// The last item quoted is the one asked: earlier ones are context.
			q.in, q.item = ref.in, ref.item
		}
	}
	if !foundPrefix {
		for _, text := range x.byLength {
			if strings.Contains(prompt, text) {
				q.persona = x.prefixes[text]
				break
			}
		}
	}
	if q.in == nil {
		last := -1
		for _, text := range x.itemList {
			if i := strings.LastIndex(prompt, text); i > last {
				last = i
				ref := x.items[text]
				q.in, q.item = ref.in, ref.item
			}
		}
	}
	if q.in != nil {
		q.lo, q.hi, q.labels = q.in.Scale.Min, q.in.Scale.Max, q.in.Scale.Labels
		if len(q.labels) != q.hi-q.lo+1 {
			q.labels = nil
		}
		return q
	}
	q.lo, q.hi = srvScale(prompt)
	return q
}

// srvScaleRange finds "from X to Y" as in "Answer with a single number from 1
// to 6".
var srvScaleRange = regexp.MustCompile(`from (\d+) to (\d+)`)

// srvScale reads the answer scale of an unknown prompt from its last "from X
// to Y"; answers are single digits, so the scale is at most 0 to 10 points
// apart, else the PVQ's 1 to 6.
func srvScale(prompt string) (lo, hi int) {
	m := srvScaleRange.FindAllStringSubmatch(prompt, -1)
	if len(m) > 0 {
		last := m[len(m)-1]
		a, errA := strconv.Atoi(last[1])
		b, errB := strconv.Atoi(last[2])
		if errA == nil && errB == nil && a < b && b-a <= 10 && b <= 10 {
			return a, b
		}
	}
	return 1, 6
}

// distribution is the answer distribution of the question over lo..hi.
// Unknown items get a broad hump centred on the scale (standard deviation
// as wide as the scale), close to uniform but with a mode, so that
// temperature 0 still has a single answer.
func (s *Server) distribution(q srvQuestion) []float64 {
	if q.in != nil {
		return s.syn.Distribution(q.in, q.item, q.persona)
	}
	mid := float64(q.lo+q.hi) / 2
	return discretisedNormal(mid, float64(q.hi-q.lo+1), q.lo, q.hi)
}

// srvLog is a log-probability that JSON can carry: log(0) would be -Inf.
func srvLog(p float64) float64 {
	return math.Log(max(p, 1e-30))
}

// discretisedNormal gives P(answer = x) for x in [lo, hi], the mass of a
// normal(mu, sd) between x−½ and x+½ with the tails folded into the ends.
func discretisedNormal(mu, sd float64, lo, hi int) []float64 {
	out := make([]float64, hi-lo+1)
	cdf := func(x float64) float64 { return 0.5 * math.Erfc(-(x-mu)/(sd*math.Sqrt2)) }
	prev := 0.0
	for x := lo; x <= hi; x++ {
		c := 1.0
		if x < hi {
			c = cdf(float64(x) + 0.5)
		}
		out[x-lo] = c - prev
		prev = c
	}
	return out
}
