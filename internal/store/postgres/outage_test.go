package postgres

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// proxied starts a TCP proxy in front of the test database and returns it
// with a DSN that goes through it.
func proxied(t *testing.T) (*toxiproxy.Proxy, string) {
	t.Helper()
	u, err := url.Parse(testDSN(t))
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		t.Skip("the outage test needs TANDEM_TEST_POSTGRES as a postgres:// URL with a host")
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "postgres", "127.0.0.1:0", u.Host)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(p.Stop)
	u.Host = p.Listen
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	return p, u.String()
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// While the database cannot be reached every call fails fast with
// ErrUnavailable; once it is back, the same store works again.
func TestOutage(t *testing.T) {
	schema := newSchema(t)
	proxy, dsn := proxied(t)
	s := openStore(t, schema, func(c *Config) { c.DSN = dsn })
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ins := func(id string) error {
		_, err := s.MessageInsert(ctx, &store.MessageInsertParams{
			Message:    record.Message{ID: id, Route: "r"},
			Deliveries: []record.Delivery{{ID: "d" + id, Step: "s", Target: "t", Status: record.DeliveryScheduled, NextAttemptAt: now}},
			Now:        &now,
		})
		return err
	}
	if err := ins("m1"); err != nil {
		t.Fatalf("insert before: %v", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	heard := s.Listen(lctx)
	waitHeard := func(want string) {
		t.Helper()
		timer := time.NewTimer(15 * time.Second)
		defer timer.Stop()
		for {
			select {
			case got := <-heard:
				if got == want {
					return
				}
			case <-timer.C:
				t.Fatalf("listener: no %q within 15s", want)
			}
		}
	}
	waitHeard("")

	proxy.Stop()
	calls := []struct {
		name string
		call func() error
	}{
		{"MessageInsert", func() error { return ins("m2") }},
		{"MessageGet", func() error { _, err := s.MessageGet(ctx, "m1"); return err }},
		{"DeliveryClaim", func() error {
			_, err := s.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: "t", Limit: 1, LeaseFor: time.Minute, Owner: "w", Now: &now})
			return err
		}},
		{"DeliveryComplete", func() error {
			_, err := s.DeliveryComplete(ctx, &store.DeliveryCompleteParams{DeliveryID: "dm1", Owner: "w", LeaseToken: 1, Status: record.DeliverySucceeded, Attempt: record.Attempt{N: 1}, Now: &now})
			return err
		}},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			err := c.call()
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("during the outage: got %v, want ErrUnavailable", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v to fail", d)
			}
		})
	}

	if err := proxy.Start(); err != nil {
		t.Fatalf("restart proxy: %v", err)
	}
	waitFor(t, 10*time.Second, "ping after the outage", func() bool { return s.Ping(ctx) == nil })
	if err := ins("m3"); err != nil {
		t.Fatalf("insert after: %v", err)
	}
	if _, err := s.MessageGet(ctx, "m1"); err != nil {
		t.Fatalf("get after: %v", err)
	}
	// The listener reconnected on its own.
	waitHeard("")
}
