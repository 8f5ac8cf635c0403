package analysis

// ValueScores scores one respondent's answers to a PVQ-style instrument.
// keyOf[i] is the value index (0…9, circular order) item i measures, or -1
// for an item that measures no value; answers[i] is the answer to item i,
// 0 meaning missing or invalid. It writes into raw the mean of each value's
// valid items, and into mrat those means minus the respondent's mean over
// all valid value items (MRAT centring; items keyed -1 are left out of that
// mean because they are not part of the value scale). It reports false,
// leaving raw and mrat unspecified, when some value has no valid item.
//
// It allocates nothing: it runs once per agent on populations of millions.
// Slices of the wrong length or keys above 9 are programmer errors and
// panic.
func ValueScores(keyOf []int, answers []uint8, raw, mrat []float64) bool {
	if len(answers) != len(keyOf) {
		panic("analysis: ValueScores: answers and keys differ in length")
	}
	_, _ = raw[9], mrat[9] // one bounds check up front
	var sum [10]float64
	var cnt [10]int
	var total float64
	var n int
	for i, k := range keyOf {
		a := answers[i]
		if k < 0 || a == 0 {
			continue
		}
		sum[k] += float64(a)
		cnt[k]++
		total += float64(a)
		n++
	}
	for v := range cnt {
		if cnt[v] == 0 {
			return false
		}
	}
	mean := total / float64(n)
	for v := range sum {
		raw[v] = sum[v] / float64(cnt[v])
		mrat[v] = raw[v] - mean
	}
	return true
}
