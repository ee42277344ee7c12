package ui

import (
	"math"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// attemptMetric is the histogram the targets page reads its percentiles from.
const attemptMetric = "tandem_attempt_duration_seconds"

// histogram is one target's attempt durations, summed over its routes
// and steps: cumulative counts at each upper bound, in seconds.
type histogram struct {
	bounds []float64
	counts []float64
	count  uint64
}

// latencies reads the attempt-duration histogram per target from g.
func latencies(g prometheus.Gatherer) map[string]*histogram {
	out := map[string]*histogram{}
	if g == nil {
		return out
	}
	mfs, err := g.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != attemptMetric {
			continue
		}
		for _, m := range mf.GetMetric() {
			target := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "target" {
					target = l.GetValue()
				}
			}
			h := m.GetHistogram()
			if h == nil || target == "" {
				continue
			}
			acc := out[target]
			if acc == nil {
				acc = &histogram{}
				for _, b := range h.GetBucket() {
					acc.bounds = append(acc.bounds, b.GetUpperBound())
				}
				acc.counts = make([]float64, len(acc.bounds))
				out[target] = acc
			}
			for i, b := range h.GetBucket() {
				if i < len(acc.counts) {
					acc.counts[i] += float64(b.GetCumulativeCount())
				}
			}
			acc.count += h.GetSampleCount()
		}
	}
	return out
}

// quantile estimates the q-quantile in seconds by linear interpolation
// inside the bucket that holds it, as PromQL's histogram_quantile does;
// past the last bound it answers the last bound.
func (h *histogram) quantile(q float64) float64 {
	if h.count == 0 || len(h.bounds) == 0 {
		return math.NaN()
	}
	rank := q * float64(h.count)
	i := sort.Search(len(h.counts), func(i int) bool { return h.counts[i] >= rank })
	if i >= len(h.bounds) {
		return h.bounds[len(h.bounds)-1]
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = h.bounds[i-1], h.counts[i-1]
	}
	inBucket := h.counts[i] - below
	if inBucket <= 0 {
		return h.bounds[i]
	}
	return lower + (h.bounds[i]-lower)*(rank-below)/inBucket
}
