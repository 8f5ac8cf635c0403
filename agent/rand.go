package agent

// The agents' random source is counter-based: each draw is a hash of the
// agent's seed and what is being drawn (model, instrument, item, round), so
// an answer never depends on the order in which goroutines ran or on which
// host ran them. splitmix64's finaliser gives well-mixed 64-bit outputs.

func mix(a, b uint64) uint64 {
	return splitmix(a ^ splitmix(b+0x9e3779b97f4a7c15))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func hashString(s string) uint64 {
	// FNV-1a, then mixed.
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return splitmix(h)
}

// Uniform returns a number in [0,1) determined by the seed and the keys.
func Uniform(seed uint64, keys ...uint64) float64 {
	h := seed
	for _, k := range keys {
		h = mix(h, k)
	}
	return float64(h>>11) / (1 << 53)
}

// Draw picks an option index from a probability distribution (which need not
// be normalised) using the agent's seed and the draw's keys.
func Draw(dist []float64, seed, key, item, round uint64) int {
	return drawAt(dist, mix(mix(mix(seed, key), item), round))
}

// drawAt is Draw with the keys already hashed into h, so that an agent
// answering many items hashes its seed and the task once, not per item.
func drawAt(dist []float64, h uint64) int {
	u := float64(h>>11) / (1 << 53)
	total := 0.0
	for _, p := range dist {
		total += p
	}
	u *= total
	acc := 0.0
	for i, p := range dist {
		acc += p
		if u < acc {
			return i
		}
	}
	return len(dist) - 1
}
