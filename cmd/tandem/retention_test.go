package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandem-run/tandem/client"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// TestRetentionServe: with store.retention set, `serve` purges finished
// messages in the background once their retention has passed; a message
// whose dead letter waits for a replay is kept for the dead retention.
func TestRetentionServe(t *testing.T) {
	t.Parallel()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadRequest) }))
	defer bad.Close()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`server: { listen: "127.0.0.1:0", shutdown_grace: 2s }
store: { dsn: %q, retention: { succeeded: 1s, dead: 1h } }
targets:
  ok: { url: %q }
  bad: { url: %q }
routes:
  - { name: good, path: /good, steps: [{ name: a, target: ok }] }
  - { name: fail, path: /fail, steps: [{ name: a, target: bad }] }
`, filepath.Join(t.TempDir(), "r.db"), ok.URL, bad.URL)), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	c := client.New("http://"+srv.addr.String(), "")
	ctx := context.Background()
	send := func(path string) string {
		res, err := c.Send(ctx, path, []byte(`{}`), "application/json", "")
		if err != nil || res.StatusCode != http.StatusAccepted {
			t.Fatalf("send %s: %v %+v", path, err, res)
		}
		return res.Location[len("/v1/messages/"):]
	}
	good, failed := send("/good"), send("/fail")
	waitFor(t, 10*time.Second, "the failed message settled", func() bool {
		m, err := c.Message(ctx, failed)
		return err == nil && m.Terminal()
	})
	waitFor(t, 15*time.Second, "the succeeded message purged", func() bool {
		_, err := c.Message(ctx, good)
		var p *client.Problem
		return errors.As(err, &p) && p.Status == http.StatusNotFound
	})
	if _, err := c.Message(ctx, failed); err != nil {
		t.Errorf("the message with a dead letter is gone too: %v", err)
	}
}

// TestRetentionBatches: one purge takes every expired message, a small
// batch per store call, and leaves those still within their retention.
func TestRetentionBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "b.db"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// m00..m24 succeed a minute apart: m00..m19 are more than an hour old
	// at t0+80m, m20..m24 are not.
	for i := range 25 {
		at := t0.Add(time.Duration(i) * time.Minute)
		id := fmt.Sprintf("m%02d", i)
		m := record.Message{ID: id, Route: "r", Body: []byte(`{}`), BodyHash: "h" + id}
		d := record.Delivery{ID: id + "-a", Step: "a", Target: "t", Required: true, Status: record.DeliveryScheduled, NextAttemptAt: at}
		if _, err := st.MessageInsert(ctx, &store.MessageInsertParams{Message: m, Deliveries: []record.Delivery{d}, Now: &at}); err != nil {
			t.Fatal(err)
		}
		ds, err := st.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: "t", Limit: 1, LeaseFor: time.Minute, Owner: "w", Now: &at})
		if err != nil || len(ds) != 1 {
			t.Fatalf("claim: %v %v", ds, err)
		}
		p := store.CompleteSucceeded(store.LeaseOf(&ds[0]), record.Attempt{N: 1, StartedAt: at, HTTPStatus: 200, Outcome: record.OutcomeSuccess}, store.Response{Status: 200})
		p.Now = &at
		if _, err := st.DeliveryComplete(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	r := &retention{st: countingStore{st, &calls}, keep: config.Retention{Succeeded: config.Duration(time.Hour)}, log: slog.Default(),
		batch: 3, pause: time.Millisecond, now: func() time.Time { return t0.Add(80 * time.Minute) }}
	n, err := r.once(ctx)
	if err != nil || n != 20 {
		t.Fatalf("purged %d, %v; want 20", n, err)
	}
	if calls != 7 {
		t.Errorf("%d store calls, want 7 (batches of 3)", calls)
	}
	res, err := st.MessageList(ctx, &store.MessageListParams{Limit: 100})
	if err != nil || len(res.Messages) != 5 || res.Messages[4].ID != "m20" {
		t.Errorf("left: %v %v", res, err)
	}
}

// countingStore counts MessagePurge calls.
type countingStore struct {
	store.Store
	calls *int
}

func (c countingStore) MessagePurge(ctx context.Context, p *store.MessagePurgeParams) (int, error) {
	*c.calls++
	return c.Store.MessagePurge(ctx, p)
}

func TestRetentionEvery(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		keep config.Retention
		want time.Duration
	}{
		{config.Retention{Succeeded: config.Duration(7 * 24 * time.Hour)}, time.Minute},
		{config.Retention{Succeeded: config.Duration(7 * 24 * time.Hour), Dead: config.Duration(5 * time.Second)}, 500 * time.Millisecond},
		{config.Retention{Failed: config.Duration(time.Millisecond)}, 100 * time.Millisecond},
	} {
		if got := retentionEvery(tt.keep); got != tt.want {
			t.Errorf("%+v: %s, want %s", tt.keep, got, tt.want)
		}
	}
}
