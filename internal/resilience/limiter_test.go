package resilience

import (
	"math"
	"testing"
	"time"
)

func TestLimiterOff(t *testing.T) {
	t.Parallel()
	for _, s := range []LimiterSettings{{}, {PerSecond: -1}, {PerSecond: math.Inf(1)}, {PerSecond: math.NaN()}} {
		if l := NewLimiter(s); l != nil {
			t.Errorf("NewLimiter(%+v) is not nil", s)
		}
	}
	var l *Limiter
	if n := l.Available(t0, 0); n != math.MaxInt {
		t.Errorf("nil Available = %d", n)
	}
	if w, ok := l.Reserve(t0, 0); w != 0 || !ok {
		t.Errorf("nil Reserve = %v %v", w, ok)
	}
	if w := l.Next(t0); w != 0 {
		t.Errorf("nil Next = %v", w)
	}
	if s := l.Snapshot(t0); s.Enabled {
		t.Errorf("nil snapshot %+v", s)
	}
	l.SetReplicas(3, t0)
}

func TestLimiterBucket(t *testing.T) {
	t.Parallel()
	l := NewLimiter(LimiterSettings{PerSecond: 40, Burst: 5})
	ms := time.Millisecond
	if n := l.Available(t0, 0); n != 5 {
		t.Fatalf("Available now = %d, want the burst 5", n)
	}
	if n := l.Available(t0, time.Second); n != 45 {
		t.Fatalf("Available within 1s = %d, want 45", n)
	}
	for i := range 5 {
		if w, ok := l.Reserve(t0, 0); w != 0 || !ok {
			t.Fatalf("reserve %d of the burst: wait %v ok %v", i, w, ok)
		}
	}
	if w := l.Next(t0); w != 25*ms {
		t.Fatalf("Next = %v, want 25ms", w)
	}
	// Too long a wait takes nothing.
	if w, ok := l.Reserve(t0, 10*ms); ok || w != 25*ms {
		t.Fatalf("reserve with max 10ms: wait %v ok %v, want 25ms refused", w, ok)
	}
	if w, ok := l.Reserve(t0, time.Second); !ok || w != 25*ms {
		t.Fatalf("reserve with max 1s: wait %v ok %v, want 25ms", w, ok)
	}
	if w, ok := l.Reserve(t0, time.Second); !ok || w != 50*ms {
		t.Fatalf("next reserve: wait %v ok %v, want 50ms", w, ok)
	}
	s := l.Snapshot(t0)
	if !s.Enabled || s.Tokens > -1.99 || s.Tokens < -2.01 || s.EffectivePerSecond != 40 || s.EffectiveBurst != 5 || s.Replicas != 1 {
		t.Fatalf("snapshot %+v, want 2 tokens owed at 40/s", s)
	}
	if n := l.Available(t0.Add(50*ms), 0); n != 0 {
		t.Fatalf("Available when the owed tokens are just paid = %d, want 0", n)
	}
	if n := l.Available(t0.Add(time.Second), 0); n != 5 {
		t.Fatalf("Available after a second = %d, want the burst 5", n)
	}
}

// TestLimiterWindow drives the limiter the way the engine does, with a
// manual clock, and checks the token bucket's promise: no window of one
// second holds more than PerSecond + Burst calls.
func TestLimiterWindow(t *testing.T) {
	t.Parallel()
	const perSecond, burst = 40, 5
	l := NewLimiter(LimiterSettings{PerSecond: perSecond, Burst: burst})
	clk := NewManualClock(t0)
	var starts []time.Time
	for len(starts) < 200 {
		now := clk.Now()
		n := l.Available(now, time.Second)
		for range n {
			w, ok := l.Reserve(now, time.Second)
			if !ok {
				t.Fatalf("Available said %d but a reserve was refused", n)
			}
			starts = append(starts, now.Add(w))
		}
		clk.Advance(7 * time.Millisecond)
	}
	for i, s := range starts {
		in := 0
		for _, u := range starts[i:] {
			if u.Sub(s) < time.Second {
				in++
			}
		}
		if in > perSecond+burst {
			t.Fatalf("%d calls in the second from %v, want at most %d", in, s.Sub(t0), perSecond+burst)
		}
	}
}

func TestLimiterReplicas(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		s         LimiterSettings
		replicas  int
		wantRate  float64
		wantBurst int
	}{
		{"shared by four", LimiterSettings{PerSecond: 100, Burst: 20, Shared: true}, 4, 25, 5},
		{"burst rounds up to one", LimiterSettings{PerSecond: 10, Burst: 2, Shared: true}, 3, 10.0 / 3, 1},
		{"zero counts as one", LimiterSettings{PerSecond: 10, Burst: 2, Shared: true}, 0, 10, 2},
		{"not shared", LimiterSettings{PerSecond: 100, Burst: 20}, 4, 100, 20},
		{"default burst", LimiterSettings{PerSecond: 2.5}, 1, 2.5, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := NewLimiter(tt.s)
			l.SetReplicas(tt.replicas, t0)
			s := l.Snapshot(t0)
			if math.Abs(s.EffectivePerSecond-tt.wantRate) > 1e-9 || s.EffectiveBurst != tt.wantBurst {
				t.Errorf("effective %g/s burst %d, want %g/s burst %d", s.EffectivePerSecond, s.EffectiveBurst, tt.wantRate, tt.wantBurst)
			}
			if s.Tokens > float64(tt.wantBurst) {
				t.Errorf("tokens %g above the burst %d", s.Tokens, tt.wantBurst)
			}
		})
	}
	// Back to one replica: the full rate again.
	l := NewLimiter(LimiterSettings{PerSecond: 100, Burst: 20, Shared: true})
	l.SetReplicas(4, t0)
	l.SetReplicas(1, t0)
	if s := l.Snapshot(t0); s.EffectivePerSecond != 100 || s.EffectiveBurst != 20 || s.Replicas != 1 {
		t.Errorf("after scaling back: %+v", s)
	}
}
