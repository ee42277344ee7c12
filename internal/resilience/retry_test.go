package resilience

import (
	"math"
	"sync"
	"testing"
	"time"
)

var defaults = Policy{MaxAttempts: 8, Initial: 500 * time.Millisecond, Max: 5 * time.Minute, Multiplier: 2, MaxAge: 24 * time.Hour}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   Policy
		want Policy
	}{
		{"zero", Policy{}, defaults},
		{"negative", Policy{MaxAttempts: -1, Initial: -1, Max: -1, Multiplier: -3, MaxAge: -1}, Policy{8, 500 * time.Millisecond, 5 * time.Minute, 1, 24 * time.Hour}},
		{"below one", Policy{Multiplier: 0.5}, Policy{8, 500 * time.Millisecond, 5 * time.Minute, 1, 24 * time.Hour}},
		{"NaN", Policy{Multiplier: math.NaN()}, defaults},
		{"kept", Policy{3, time.Second, time.Minute, 1.5, time.Hour}, Policy{3, time.Second, time.Minute, 1.5, time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.in.WithDefaults(); got != tt.want {
				t.Errorf("WithDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCap(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name    string
		p       Policy
		attempt int
		want    time.Duration
	}{
		{"attempt 0 counts as 1", defaults, 0, 500 * ms},
		{"negative attempt", defaults, -5, 500 * ms},
		{"1", defaults, 1, 500 * ms},
		{"2", defaults, 2, time.Second},
		{"3", defaults, 3, 2 * time.Second},
		{"4", defaults, 4, 4 * time.Second},
		{"7", defaults, 7, 32 * time.Second},
		{"10", defaults, 10, 256 * time.Second},
		{"11 capped", defaults, 11, 5 * time.Minute},
		{"1000 capped", defaults, 1000, 5 * time.Minute},
		{"huge", defaults, math.MaxInt, 5 * time.Minute},
		{"multiplier 1.5", Policy{Initial: time.Second, Multiplier: 1.5}, 3, 2250 * ms},
		{"multiplier 1 constant", Policy{Initial: time.Second, Multiplier: 1}, 50, time.Second},
		{"initial above max", Policy{Initial: time.Hour, Max: time.Minute}, 1, time.Minute},
		{"max near overflow", Policy{Initial: time.Second, Max: time.Duration(math.MaxInt64), Multiplier: 10}, 400, time.Duration(math.MaxInt64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.p.Cap(tt.attempt); got != tt.want {
				t.Errorf("Cap(%d) = %v, want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"rnd 0", 3, 0, 0},
		{"rnd half", 3, 0.5, time.Second},
		{"rnd quarter", 1, 0.25, 125 * time.Millisecond},
		{"rnd just below 1", 3, 0.999999, 1999998 * time.Microsecond},
		{"rnd negative clamps", 3, -1, 0},
		{"rnd NaN clamps", 3, math.NaN(), 0},
		{"rnd above 1 clamps", 3, 7, 2 * time.Second},
		{"capped, half", 40, 0.5, 150 * time.Second},
		{"huge attempt", math.MaxInt, 0.5, 150 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := defaults.Backoff(tt.attempt, tt.rnd); got != tt.want {
				t.Errorf("Backoff(%d, %v) = %v, want %v", tt.attempt, tt.rnd, got, tt.want)
			}
		})
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	t.Parallel()
	for attempt := 1; attempt <= 20; attempt++ {
		limit := defaults.Cap(attempt)
		for range 200 {
			if d := defaults.Backoff(attempt, Jitter()); d < 0 || d >= limit {
				t.Fatalf("Backoff(%d) = %v, outside [0, %v)", attempt, d, limit)
			}
		}
	}
}

func TestNext(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		p          Policy
		attempts   int
		since, now time.Time
		retryAfter time.Duration
		rnd        float64
		want       time.Time
		wantOK     bool
	}{
		{"first retry", defaults, 1, t0, t0, 0, 0.5, t0.Add(250 * time.Millisecond), true},
		{"third retry", defaults, 3, t0, t0.Add(time.Minute), 0, 0.5, t0.Add(time.Minute + time.Second), true},
		{"rnd 0 retries at once", defaults, 2, t0, t0, 0, 0, t0, true},
		{"last allowed", defaults, 7, t0, t0, 0, 0.5, t0.Add(16 * time.Second), true},
		{"attempts spent", defaults, 8, t0, t0, 0, 0.5, time.Time{}, false},
		{"past spent", defaults, 12, t0, t0, 0, 0.5, time.Time{}, false},
		{"no retries", Policy{MaxAttempts: 1}, 1, t0, t0, 0, 0.5, time.Time{}, false},
		{"zero attempts", defaults, 0, t0, t0, 0, 0.5, t0.Add(250 * time.Millisecond), true},
		{"age: just fits", defaults, 3, t0, t0.Add(24*time.Hour - time.Second), 0, 0.5, t0.Add(24 * time.Hour), true},
		{"age: too late", defaults, 3, t0, t0.Add(24*time.Hour - time.Second), 0, 0.75, time.Time{}, false},
		{"age: already past", defaults, 3, t0, t0.Add(25 * time.Hour), 0, 0, time.Time{}, false},
		{"age counts from since", defaults, 3, t0.Add(10 * time.Hour), t0.Add(30 * time.Hour), 0, 0.5, t0.Add(30*time.Hour + time.Second), true},
		{"retry-after longer than backoff", defaults, 1, t0, t0, 30 * time.Second, 0.5, t0.Add(30 * time.Second), true},
		{"retry-after shorter than backoff", defaults, 5, t0, t0, time.Second, 0.5, t0.Add(4 * time.Second), true},
		{"retry-after beyond max", defaults, 1, t0, t0, time.Hour, 0.5, t0.Add(time.Hour), true},
		{"retry-after beyond max age", defaults, 1, t0, t0.Add(23 * time.Hour), 2 * time.Hour, 0.5, time.Time{}, false},
		{"retry-after does not extend attempts", defaults, 8, t0, t0, time.Second, 0.5, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := tt.p.Next(tt.attempts, tt.since, tt.now, tt.retryAfter, tt.rnd)
			if !got.Equal(tt.want) || ok != tt.wantOK {
				t.Errorf("Next(%d) = %v, %v; want %v, %v", tt.attempts, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestScheduleWorkedExample is the example in docs/delivery.md.
func TestScheduleWorkedExample(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	p := Policy{MaxAttempts: 5, Initial: time.Second, Max: 10 * time.Second, Multiplier: 3, MaxAge: time.Hour}
	rnds := []float64{0.5, 0.2, 0.9, 0.5}
	want := []time.Duration{500 * time.Millisecond, 600 * time.Millisecond, 8100 * time.Millisecond, 5 * time.Second}
	now := t0
	for i, rnd := range rnds {
		next, ok := p.Next(i+1, t0, now, 0, rnd)
		if !ok || next.Sub(now) != want[i] {
			t.Fatalf("after attempt %d: wait %v (ok %v), want %v", i+1, next.Sub(now), ok, want[i])
		}
		now = next
	}
	if _, ok := p.Next(5, t0, now, 0, 0.5); ok {
		t.Error("a sixth attempt was scheduled with max_attempts 5")
	}
}

func TestJitterConcurrent(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if v := Jitter(); v < 0 || v >= 1 {
					t.Errorf("Jitter() = %v, outside [0, 1)", v)
					return
				}
			}
		})
	}
	wg.Wait()
}
