package resilience

import (
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type transition struct {
	from, to BreakerState
	at       time.Duration // since t0
}

// newTestBreaker returns a breaker on a manual clock at t0 that records
// its transitions.
func newTestBreaker(t *testing.T, s BreakerSettings) (*Breaker, *ManualClock, func() []transition) {
	t.Helper()
	clk := NewManualClock(t0)
	var mu sync.Mutex
	var got []transition
	b := NewBreaker(s, clk, func(c BreakerChange) {
		mu.Lock()
		got = append(got, transition{c.From, c.To, c.At.Sub(t0)})
		mu.Unlock()
	})
	return b, clk, func() []transition {
		mu.Lock()
		defer mu.Unlock()
		return append([]transition(nil), got...)
	}
}

// call makes one call through b with the given outcome and fails the test
// if b refuses it.
func call(t *testing.T, b *Breaker, success bool) {
	t.Helper()
	p, err := b.Allow()
	if err != nil {
		t.Fatalf("Allow: %v", err)
	}
	p.Done(success)
}

func TestBreakerTrips(t *testing.T) {
	t.Parallel()
	const F, S = false, true
	tests := []struct {
		name     string
		settings BreakerSettings
		calls    []bool // outcomes, in order
		want     BreakerState
	}{
		{"below min requests", BreakerSettings{MinRequests: 10}, []bool{F, F, F, F, F, F, F, F, F}, BreakerClosed},
		{"min requests all failed", BreakerSettings{MinRequests: 10}, []bool{F, F, F, F, F, F, F, F, F, F}, BreakerOpen},
		{"ratio reached", BreakerSettings{MinRequests: 4, FailureRatio: 0.5}, []bool{S, S, F, F}, BreakerOpen},
		{"ratio not reached", BreakerSettings{MinRequests: 4, FailureRatio: 0.5}, []bool{S, S, S, F, F}, BreakerClosed},
		{"successes only", BreakerSettings{MinRequests: 1}, []bool{S, S, S, S}, BreakerClosed},
		{"ratio one needs all failed", BreakerSettings{MinRequests: 2, FailureRatio: 1}, []bool{S, F, F, F}, BreakerClosed},
		{"min one opens at first failure", BreakerSettings{MinRequests: 1, FailureRatio: 1}, []bool{F}, BreakerOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, _, _ := newTestBreaker(t, tt.settings)
			for _, ok := range tt.calls {
				call(t, b, ok)
			}
			if got := b.Snapshot().State; got != tt.want {
				t.Errorf("state %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBreakerCycle(t *testing.T) {
	t.Parallel()
	b, clk, transitions := newTestBreaker(t, BreakerSettings{MinRequests: 3, FailureRatio: 0.5, OpenFor: 10 * time.Second, HalfOpenProbes: 2})
	for range 3 {
		call(t, b, false)
	}
	s := b.Snapshot()
	if s.State != BreakerOpen || !s.OpenUntil.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("after 3 failures: %+v, want open until t0+10s", s)
	}
	// Open: every call refused, with the time to ask again.
	_, err := b.Allow()
	var oe *BreakerOpenError
	if !errors.As(err, &oe) || !errors.Is(err, ErrBreakerOpen) || oe.State != BreakerOpen || !oe.Until.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("Allow while open: %v", err)
	}
	if n, until := b.Capacity(); n != 0 || !until.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("Capacity while open: %d until %v", n, until)
	}
	clk.Advance(10*time.Second - time.Nanosecond)
	if _, err := b.Allow(); err == nil {
		t.Fatal("allowed a call a nanosecond before the breaker half-opens")
	}

	// Half-open: two probes, then refusals until one reports.
	clk.Advance(time.Nanosecond)
	if n, _ := b.Capacity(); n != 2 {
		t.Fatalf("Capacity half-open = %d, want 2 probes", n)
	}
	p1, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Allow(); !errors.As(err, &oe) || oe.State != BreakerHalfOpen {
		t.Fatalf("third probe: %v, want refused half-open", err)
	}
	// A cancelled probe frees its slot.
	p2.Cancel()
	if n, _ := b.Capacity(); n != 1 {
		t.Fatalf("after a cancel: capacity %d, want 1", n)
	}
	p3, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	p1.Done(true)
	if got := b.Snapshot(); got.State != BreakerHalfOpen || got.ProbesOK != 1 {
		t.Fatalf("after one good probe: %+v, want half-open", got)
	}
	// A failed probe opens it again, for OpenFor from now.
	clk.Advance(time.Second)
	p3.Done(false)
	if s := b.Snapshot(); s.State != BreakerOpen || !s.OpenUntil.Equal(t0.Add(21*time.Second)) {
		t.Fatalf("after a failed probe: %+v, want open until t0+21s", s)
	}

	// Half-open again; both probes succeed: closed, empty window.
	clk.Advance(10 * time.Second)
	call(t, b, true)
	call(t, b, true)
	if s := b.Snapshot(); s.State != BreakerClosed || s.Requests != 0 {
		t.Fatalf("after two good probes: %+v, want closed and empty", s)
	}
	want := []transition{
		{BreakerClosed, BreakerOpen, 0},
		{BreakerOpen, BreakerHalfOpen, 10 * time.Second},
		{BreakerHalfOpen, BreakerOpen, 11 * time.Second},
		{BreakerOpen, BreakerHalfOpen, 21 * time.Second},
		{BreakerHalfOpen, BreakerClosed, 21 * time.Second},
	}
	got := transitions()
	if len(got) != len(want) {
		t.Fatalf("transitions %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("transition %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestBreakerIgnoresOldGenerations(t *testing.T) {
	t.Parallel()
	b, clk, _ := newTestBreaker(t, BreakerSettings{MinRequests: 2, FailureRatio: 1, OpenFor: time.Second})
	// A call that started while closed ends after the breaker opened.
	late, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	call(t, b, false)
	call(t, b, false)
	clk.Advance(time.Second)
	probe, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	// The late failure must not reopen the half-open breaker...
	late.Done(false)
	if s := b.Snapshot(); s.State != BreakerHalfOpen {
		t.Fatalf("a stale failure changed the state to %s", s.State)
	}
	// ...nor a stale cancel free a probe slot.
	late.Cancel()
	if n, _ := b.Capacity(); n != 0 {
		t.Fatalf("a stale cancel freed a probe: capacity %d", n)
	}
	probe.Done(true)
	if s := b.Snapshot(); s.State != BreakerClosed {
		t.Fatalf("state %s after the probe, want closed", s.State)
	}
}

func TestBreakerWindowSlides(t *testing.T) {
	t.Parallel()
	b, clk, _ := newTestBreaker(t, BreakerSettings{MinRequests: 4, FailureRatio: 0.5, Window: 10 * time.Second, Buckets: 10})
	call(t, b, false)
	call(t, b, false)
	call(t, b, false)
	if s := b.Snapshot(); s.Requests != 3 || s.Failures != 3 || s.FailureRatio != 1 {
		t.Fatalf("snapshot %+v, want 3 of 3 failed", s)
	}
	// The three failures leave the window before the fourth call.
	clk.Advance(10 * time.Second)
	if s := b.Snapshot(); s.Requests != 0 {
		t.Fatalf("after the window: %+v, want empty", s)
	}
	call(t, b, false)
	if s := b.Snapshot(); s.State != BreakerClosed || s.Requests != 1 {
		t.Fatalf("old failures counted: %+v", s)
	}
	// Within the window they add up: 1 + 3 failures 5s apart.
	clk.Advance(5 * time.Second)
	call(t, b, false)
	call(t, b, true)
	call(t, b, false)
	if s := b.Snapshot(); s.State != BreakerOpen {
		t.Fatalf("3 failures of 4 calls in the window: %+v, want open", s)
	}
}

func TestBreakerNil(t *testing.T) {
	t.Parallel()
	var b *Breaker
	p, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	p.Done(false)
	p.Cancel()
	if n, _ := b.Capacity(); n != math.MaxInt {
		t.Errorf("nil capacity %d", n)
	}
	if s := b.Snapshot(); s.State != BreakerClosed {
		t.Errorf("nil snapshot %+v", s)
	}
}

func TestBreakerSettingsDefaults(t *testing.T) {
	t.Parallel()
	got := BreakerSettings{FailureRatio: 2, Window: 5}.WithDefaults()
	want := BreakerSettings{DefaultFailureRatio, DefaultMinRequests, 5, DefaultOpenFor, DefaultHalfOpenProbes, 5}
	if got != want {
		t.Errorf("WithDefaults() = %+v, want %+v", got, want)
	}
	if s := BreakerState(7).String(); s != "BreakerState(7)" {
		t.Errorf("String() = %q", s)
	}
}

// TestBreakerConcurrent runs many callers at once (for -race) and checks
// that half-open never lets more probes through than configured.
func TestBreakerConcurrent(t *testing.T) {
	t.Parallel()
	b, clk, _ := newTestBreaker(t, BreakerSettings{MinRequests: 5, FailureRatio: 0.5, OpenFor: time.Second, HalfOpenProbes: 3})
	for range 5 {
		call(t, b, false)
	}
	clk.Advance(time.Second)
	var mu sync.Mutex
	var permits []Permit
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 10 {
				if p, err := b.Allow(); err == nil {
					mu.Lock()
					permits = append(permits, p)
					mu.Unlock()
				}
				_ = b.Snapshot()
			}
		})
	}
	wg.Wait()
	if len(permits) != 3 {
		t.Fatalf("%d probes allowed, want 3", len(permits))
	}
	for _, p := range permits {
		wg.Go(func() { p.Done(true) })
	}
	wg.Wait()
	if s := b.Snapshot(); s.State != BreakerClosed {
		t.Errorf("state %s, want closed", s.State)
	}
}
