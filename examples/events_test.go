package examples_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-run/tandem/examples/sampleapi"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/source"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// TestEventsExample runs examples/events.yaml against the test NATS (its
// streams and subjects renamed for this run): each order.created event
// reaches billing and shipping, and its outcome arrives once on the
// outcome subject.
func TestEventsExample(t *testing.T) {
	url := os.Getenv("TANDEM_TEST_NATS")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("NATS not reachable at %s (TANDEM_TEST_NATS): %v", url, err)
		}
		t.Skipf("NATS not reachable at %s: %v", url, err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	svcs, err := sampleapi.Example("events")
	if err != nil {
		t.Fatal(err)
	}
	for env, s := range svcs {
		srv := httptest.NewServer(s)
		t.Cleanup(srv.Close)
		t.Setenv(env, srv.URL)
	}
	t.Setenv("NATS_URL", url)
	cfg, err := config.Load("events.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Renamed for this run: the shared broker keeps other runs' streams.
	run := fmt.Sprint(time.Now().UnixNano())
	in, out := cfg.Sources["orders"], cfg.Sources["outcomes"]
	in.Stream, in.Subjects = "EXORDERS"+run, []string{"ex." + run + ".order.created"}
	out.Stream, out.Subjects = "EXDONE"+run, []string{"ex." + run + ".orders.done"}
	cfg.Routes[0].OnComplete.Publish.Subject = out.Subjects[0]
	ctx := context.Background()
	t.Cleanup(func() { _ = js.DeleteStream(ctx, in.Stream); _ = js.DeleteStream(ctx, out.Stream) })
	done, err := nc.SubscribeSync(out.Subjects[0])
	if err != nil {
		t.Fatal(err)
	}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "events.db"), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	pubs := source.NewPublishers(cfg)
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: logger, Publisher: pubs, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mgr, err := source.New(source.Options{Config: cfg, Engine: eng, Store: st, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	mgr.Start(ctx)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = mgr.Stop(sctx)
		_ = eng.Shutdown(sctx)
		pubs.Close()
		_ = st.Close()
	})

	events := map[string]string{ // order → event
		"o-1": `{"order": "o-1", "total": 42, "address": "1 Main St"}`,
		"o-2": `{"order": "o-2", "total": 17.5}`,
		"o-3": `{"order": "o-3"}`, // no total: billing answers 422
	}
	for _, e := range events {
		if _, err := js.Publish(ctx, in.Subjects[0], []byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]engine.Summary{} // order → outcome
	for len(got) < len(events) {
		m, err := done.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("%d of %d outcomes: %v", len(got), len(events), err)
		}
		var s engine.Summary
		if err := json.Unmarshal(m.Data, &s); err != nil {
			t.Fatal(err)
		}
		var ship struct{ Order string }
		_ = json.Unmarshal(s.Steps["ship"].Body, &ship)
		if _, dup := got[ship.Order]; dup {
			t.Errorf("outcome of %s published twice", ship.Order)
		}
		got[ship.Order] = s
	}
	for _, o := range []string{"o-1", "o-2"} {
		s := got[o]
		if s.Status != record.MessageSucceeded || s.Steps["bill"].HTTPStatus != 201 || s.Steps["ship"].HTTPStatus != 201 || s.Route != "order-created" {
			t.Errorf("outcome of %s: %+v", o, s)
		}
	}
	if s := got["o-3"]; s.Status != record.MessagePartiallySucceeded || s.Steps["bill"].Status != record.DeliveryDead || s.Steps["bill"].HTTPStatus != 422 {
		t.Errorf("outcome of o-3: %+v", s)
	}
	if n := len(svcs["BILLING_URL"].Calls("/invoices")); n != 3 {
		t.Errorf("billing got %d calls, want 3", n)
	}
	if n := len(svcs["SHIPPING_URL"].Calls("/shipments")); n != 3 {
		t.Errorf("shipping got %d calls, want 3", n)
	}
}
