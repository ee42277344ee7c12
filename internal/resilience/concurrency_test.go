package resilience

import (
	"math"
	"sync"
	"testing"
)

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		max      int
		outcomes []bool
		want     int
	}{
		{"starts at max", 32, nil, 32},
		{"success stays at max", 32, []bool{true, true}, 32},
		{"one failure", 32, []bool{false}, 28}, // 32 × 0.9 = 28.8
		{"two failures", 32, []bool{false, false}, 25},
		{"a down target comes to one", 32, repeat(false, 40), 1},
		{"never below one", 4, repeat(false, 100), 1},
		{"successes add one each", 32, append(repeat(false, 40), true, true, true), 4},
		{"back to max", 32, append(repeat(false, 40), repeat(true, 100)...), 32},
		{"max below one counts as one", 0, []bool{true}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewConcurrencyLimit(tt.max)
			for _, ok := range tt.outcomes {
				c.Observe(ok)
			}
			if got := c.Limit(); got != tt.want {
				t.Errorf("Limit() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestConcurrencyLimitSettles checks the documented equilibrium: failing
// half the attempts, the limit hovers near 10.
func TestConcurrencyLimitSettles(t *testing.T) {
	t.Parallel()
	c := NewConcurrencyLimit(64)
	lo, hi := math.MaxInt, 0
	for i := range 2000 {
		c.Observe(i%2 == 0)
		if i > 1000 {
			lo, hi = min(lo, c.Limit()), max(hi, c.Limit())
		}
	}
	if lo < 8 || hi > 12 {
		t.Errorf("limit ranged %d..%d at a 50%% failure rate, want about 10", lo, hi)
	}
}

func TestConcurrencyLimitNilAndConcurrent(t *testing.T) {
	t.Parallel()
	var n *ConcurrencyLimit
	n.Observe(false)
	if n.Limit() != math.MaxInt || n.Max() != math.MaxInt {
		t.Error("nil limit is not unlimited")
	}
	c := NewConcurrencyLimit(16)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				c.Observe((i+j)%3 != 0)
				_ = c.Limit()
			}
		})
	}
	wg.Wait()
	if l := c.Limit(); l < 1 || l > 16 || c.Max() != 16 {
		t.Errorf("limit %d out of [1, 16]", l)
	}
}

func repeat(v bool, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = v
	}
	return out
}
