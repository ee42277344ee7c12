// Package typo finds the name a person most likely meant, for "did you
// mean" hints in error messages.
package typo

import (
	"math"
	"strings"
)

// Closest returns the candidate closest to s, if it is close enough to be
// a likely typo: a few edits away, or sharing a long prefix.
func Closest(s string, candidates []string) string {
	if len(s) < 3 || len(s) > 200 {
		return ""
	}
	ls := strings.ToLower(s)
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		if c == "" {
			continue
		}
		lc := strings.ToLower(c)
		d := editDistance(ls, lc)
		if d > max(1, len(s)/3) && !(len(lc) >= 4 && len(ls) >= 4 && lc[:4] == ls[:4]) {
			continue
		}
		if d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 200 || len(b) > 200 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
