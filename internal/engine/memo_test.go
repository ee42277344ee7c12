package engine

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/store"
)

// TestMemoBounded: the in-memory key memo never holds more than its bound;
// the least recently used key goes first.
func TestMemoBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := newMemo(3)
	for i := range 3 {
		en, _, err := m.begin(fmt.Sprint(i), "h", now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		m.finish(en, &Answer{HTTPStatus: 200 + i})
	}
	// Key 0 is used again, so key 1 is now the least recently used.
	if _, ans, err := m.begin("0", "h", now, time.Hour); err != nil || ans == nil || ans.HTTPStatus != 200 || !ans.Repeat {
		t.Fatalf("repeat of 0: %+v, %v", ans, err)
	}
	if _, _, err := m.begin("3", "h", now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := m.len(); n != 3 {
		t.Errorf("memo holds %d keys, want at most 3", n)
	}
	if en, ans, _ := m.begin("1", "h", now, time.Hour); ans != nil || en == nil {
		t.Errorf("key 1 should have been forgotten first; got answer %+v", ans)
	}
	if _, _, err := m.begin("3", "other", now, time.Hour); !errors.Is(err, store.ErrIdempotencyConflict) {
		t.Errorf("key 3, other body: %v", err)
	}
	if _, _, err := m.begin("3", "h", now, time.Hour); !errors.Is(err, ErrIdempotencyInFlight) {
		t.Errorf("key 3 while running: %v", err)
	}
	en, _, _ := m.begin("4", "h", now, time.Hour)
	m.abort(en)
	if en, ans, err := m.begin("4", "h", now, time.Hour); err != nil || ans != nil || en == nil {
		t.Errorf("an aborted key runs again; got %+v, %v", ans, err)
	}
}
