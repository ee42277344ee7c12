package resilience

import (
	"sync"
	"testing"
	"time"
)

func TestManualClock(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	c := NewManualClock(t0)
	var clock Clock = c
	if !clock.Now().Equal(t0) {
		t.Fatalf("Now() = %v, want %v", clock.Now(), t0)
	}
	if got := c.Advance(time.Second); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("Advance returned %v", got)
	}
	c.Set(t0.Add(time.Hour))
	if !c.Now().Equal(t0.Add(time.Hour)) {
		t.Errorf("after Set, Now() = %v", c.Now())
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Millisecond)
				_ = c.Now()
			}
		})
	}
	wg.Wait()
	if want := t0.Add(time.Hour + 800*time.Millisecond); !c.Now().Equal(want) {
		t.Errorf("after concurrent advances, Now() = %v, want %v", c.Now(), want)
	}
}

func TestSystemClock(t *testing.T) {
	t.Parallel()
	before := time.Now()
	got := SystemClock{}.Now()
	if got.Before(before) || got.After(time.Now()) {
		t.Errorf("SystemClock.Now() = %v, not between the readings around it", got)
	}
}
