package rig

import "slices"

// Summarize is the count, median, minimum and maximum of xs (all zero
// when there are none).
func Summarize(xs []float64) (n int, median, lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return len(s), m, s[0], s[len(s)-1]
}
