package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-run/tandem/client"
	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// The client against the real server: a real engine on a SQLite store in
// a temp dir, a real HTTP target, and the real HTTP handler.

const testYAML = `
targets:
  ok: { url: %q }
routes:
  - { name: orders, path: /orders, steps: [{ name: charge, target: ok }] }
`

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newServer starts tandem with a target that answers 200, and returns a
// client for it.
func newServer(t *testing.T) *client.Client {
	t.Helper()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(target.Close)
	cfg, err := config.Parse([]byte(fmt.Sprintf(testYAML, target.URL)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "client.db"), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: quiet(), PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Options{Engine: eng, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(sctx)
		_ = st.Close()
	})
	return client.New(srv.URL, "")
}

func TestClientSentinels(t *testing.T) {
	t.Parallel()
	c := newServer(t)
	ctx := context.Background()

	first, err := c.Send(ctx, "/orders", []byte(`{"n":1}`), "application/json", "order-1")
	if err != nil || first.StatusCode != http.StatusAccepted || first.Err() != nil {
		t.Fatalf("send: %v %+v", err, first)
	}
	again, err := c.Send(ctx, "/orders", []byte(`{"n":1}`), "application/json", "order-1")
	if err != nil || again.StatusCode != http.StatusAccepted || !again.Replayed() || first.Replayed() {
		t.Fatalf("repeat: %v %+v", err, again)
	}
	other, err := c.Send(ctx, "/orders", []byte(`{"n":2}`), "application/json", "order-1")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(other.Err(), client.ErrIdempotencyConflict) || other.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("same key, other body: %d %v, want ErrIdempotencyConflict", other.StatusCode, other.Err())
	}

	// The message succeeds; replaying its delivery is refused as not dead.
	var msg *client.Message
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms, _, err := c.Messages(ctx, client.ListOptions{Route: "orders"})
		if err != nil || len(ms) != 1 {
			t.Fatalf("messages: %v %+v", err, ms)
		}
		if msg, err = c.Message(ctx, ms[0].ID); err != nil {
			t.Fatal(err)
		}
		if msg.Terminal() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message still %s", msg.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if msg.Status != "succeeded" || len(msg.Deliveries) != 1 || msg.Deliveries[0].Response == nil || len(msg.Timeline) == 0 {
		t.Fatalf("message %+v", msg)
	}
	err = c.ReplayDelivery(ctx, msg.Deliveries[0].ID)
	if !errors.Is(err, client.ErrNotDead) || errors.Is(err, client.ErrNotFound) {
		t.Errorf("replay a succeeded delivery: %v, want ErrNotDead", err)
	}
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != http.StatusConflict || p.Instance == "" {
		t.Errorf("problem %+v", p)
	}
	if err := c.ReplayDelivery(ctx, "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("replay an unknown delivery: %v, want ErrNotFound", err)
	}
	if _, err := c.Message(ctx, "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("an unknown message: %v, want ErrNotFound", err)
	}

	// Field errors travel in the error's text.
	_, _, err = c.Messages(ctx, client.ListOptions{Status: "bogus"})
	if !errors.Is(err, client.ErrValidation) || !strings.Contains(err.Error(), "query.status") || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("bad status filter: %v, want ErrValidation naming query.status", err)
	}
	_, _, err = c.Messages(ctx, client.ListOptions{Cursor: "not-a-cursor"})
	if !errors.Is(err, client.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v, want ErrInvalidCursor", err)
	}
	if _, err := c.Replay(ctx, client.ReplayRequest{}); !errors.Is(err, client.ErrValidation) {
		t.Errorf("empty replay: %v, want ErrValidation", err)
	}

	routes, err := c.Routes(ctx)
	if err != nil || len(routes) != 1 || routes[0].Name != "orders" {
		t.Errorf("routes %+v %v", routes, err)
	}
	targets, err := c.Targets(ctx)
	if err != nil || len(targets) != 1 || targets[0].Name != "ok" || targets[0].Breaker == nil {
		t.Errorf("targets %+v %v", targets, err)
	}
}

// TestClientProblemFromAProxy checks that an error answer that is not a
// problem document still gives a Problem with the status, and matches no
// sentinel.
func TestClientProblemFromAProxy(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>bad gateway</html>")
	}))
	defer srv.Close()
	_, err := client.New(srv.URL, "").Message(context.Background(), "x")
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != http.StatusBadGateway || p.Type != "" {
		t.Fatalf("err %v (%+v)", err, p)
	}
	for _, s := range []error{client.ErrInternal, client.ErrUnavailable, client.ErrNotFound} {
		if errors.Is(err, s) {
			t.Errorf("a proxy's 502 matches %v", s)
		}
	}
	if err.Error() != "502 Bad Gateway" {
		t.Errorf("Error() = %q", err.Error())
	}
}
