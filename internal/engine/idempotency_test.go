package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// heldTarget answers code, but holds each request until the test lets go.
type heldTarget struct {
	*target
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newHeldTarget(t *testing.T, code int) *heldTarget {
	h := &heldTarget{entered: make(chan struct{}, 16), release: make(chan struct{})}
	h.target = newTarget(t, func(int64, *http.Request) (int, http.Header, string) {
		h.entered <- struct{}{}
		<-h.release
		return code, nil, `{"ok":true}`
	})
	t.Cleanup(h.letGo) // before the server closes
	return h
}

func (h *heldTarget) letGo() { h.once.Do(func() { close(h.release) }) }

func ingestErr(eng *engine.Engine, route, body, key string) (*engine.Answer, error) {
	return eng.Ingest(context.Background(), route, &engine.Inbound{Body: []byte(body), IdempotencyKey: key})
}

// TestIdempotencyWhileWaiting: on routes whose callers wait for the
// answer (durable respond: all, and durable: false), a repeat while the
// first request still waits is ErrIdempotencyInFlight, the same key with
// another body is ErrIdempotencyConflict, and a repeat afterwards gets the
// first answer's status code, marked Repeat, without a second request.
func TestIdempotencyWhileWaiting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		durable bool
		code    int // the target's answer
		want    int // the merged answer's status
	}{
		{"durable, succeeded", true, 200, http.StatusOK},
		{"durable, failed", true, 404, http.StatusBadGateway},
		{"in memory, succeeded", false, 200, http.StatusOK},
		{"in memory, failed", false, 404, http.StatusBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := newHeldTarget(t, tc.code)
			s := start(t, fmt.Sprintf(`
targets:
  t: { url: %q }
routes:
  - { name: r, path: /r, respond: all, durable: %t, steps: [{ name: s, target: t }] }
`, tg.srv.URL, tc.durable), engine.Options{Logger: quiet()})
			type result struct {
				a   *engine.Answer
				err error
			}
			first := make(chan result, 1)
			go func() {
				a, err := ingestErr(s.eng, "r", `{"a":1}`, "k")
				first <- result{a, err}
			}()
			<-tg.entered
			if _, err := ingestErr(s.eng, "r", `{"a":1}`, "k"); !errors.Is(err, engine.ErrIdempotencyInFlight) {
				t.Errorf("repeat while the first waits: %v, want ErrIdempotencyInFlight", err)
			}
			if _, err := ingestErr(s.eng, "r", `{"a":2}`, "k"); !errors.Is(err, store.ErrIdempotencyConflict) {
				t.Errorf("same key, other body: %v, want ErrIdempotencyConflict", err)
			}
			tg.letGo()
			r := <-first
			if r.err != nil || r.a.HTTPStatus != tc.want || r.a.Repeat {
				t.Fatalf("first: %+v, %v; want %d", r.a, r.err, tc.want)
			}
			again, err := ingestErr(s.eng, "r", `{"a":1}`, "k")
			if err != nil {
				t.Fatal(err)
			}
			if again.HTTPStatus != tc.want || !again.Repeat || again.Body.ID != r.a.Body.ID {
				t.Errorf("repeat afterwards: %d, repeat %t, id %s; want %d, repeat, id %s", again.HTTPStatus, again.Repeat, again.Body.ID, tc.want, r.a.Body.ID)
			}
			if _, err := ingestErr(s.eng, "r", `{"a":2}`, "k"); !errors.Is(err, store.ErrIdempotencyConflict) {
				t.Errorf("same key, other body, afterwards: %v, want ErrIdempotencyConflict", err)
			}
			if n := tg.calls.Load(); n != 1 {
				t.Errorf("the target got %d requests, want 1", n)
			}
		})
	}
}

// TestIdempotencyAfterDeadline: a first caller answered 202 at its
// deadline had 202; a repeat after the deadline gets 202 too (the
// message is still running), not 409.
func TestIdempotencyAfterDeadline(t *testing.T) {
	t.Parallel()
	tg := newHeldTarget(t, 200)
	s := start(t, fmt.Sprintf(`
targets:
  t: { url: %q }
routes:
  - { name: r, path: /r, respond: all, deadline: 200ms, steps: [{ name: s, target: t }] }
`, tg.srv.URL), engine.Options{Logger: quiet()})
	first, err := ingestErr(s.eng, "r", `{}`, "k")
	if err != nil || first.HTTPStatus != http.StatusAccepted {
		t.Fatalf("first: %+v, %v; want 202 at the deadline", first, err)
	}
	again, err := ingestErr(s.eng, "r", `{}`, "k")
	if err != nil || again.HTTPStatus != http.StatusAccepted || !again.Repeat || again.Body.ID != first.Body.ID {
		t.Fatalf("repeat after the deadline: %+v, %v; want 202, repeat, the first id", again, err)
	}
	if again.Body.Status != record.MessageRunning && again.Body.Status != record.MessageAccepted {
		t.Errorf("repeat: message status %s, want it still running", again.Body.Status)
	}
}

// TestInMemoryIdempotencyTTL: a durable: false route forgets a key after
// its idempotency_ttl; then the same key runs again.
func TestInMemoryIdempotencyTTL(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tg := newTarget(t, fixed(200, `{}`))
	s := start(t, fmt.Sprintf(`
targets:
  t: { url: %q }
routes:
  - { name: r, path: /r, respond: all, durable: false, idempotency_ttl: 1m, steps: [{ name: s, target: t }] }
`, tg.srv.URL), engine.Options{Now: clk.Now, Logger: quiet()})
	first := ingest(t, s.eng, "r", `{}`, "k")
	clk.Advance(59 * time.Second)
	if again := ingest(t, s.eng, "r", `{}`, "k"); !again.Repeat || again.Body.ID != first.Body.ID {
		t.Errorf("repeat within the ttl: repeat %t, id %s; want the first answer", again.Repeat, again.Body.ID)
	}
	clk.Advance(time.Second) // the key was first seen 60s ago
	if later := ingest(t, s.eng, "r", `{}`, "k"); later.Repeat || later.Body.ID == first.Body.ID {
		t.Errorf("after the ttl: repeat %t; want a new run", later.Repeat)
	}
	if n := tg.calls.Load(); n != 2 {
		t.Errorf("the target got %d requests, want 2", n)
	}
}
