package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestRunExampleEvents runs `tandem demo --example events` against the
// local NATS: the events fan out to billing and shipping and the outcomes
// come back on orders.done.
func TestRunExampleEvents(t *testing.T) {
	url := os.Getenv("TANDEM_TEST_NATS")
	if url == "" {
		url = defaultNATS
	}
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("NATS not reachable at %s (TANDEM_TEST_NATS): %v", url, err)
		}
		t.Skipf("NATS not reachable at %s: %v", url, err)
	}
	nc.Close()
	for _, env := range []string{"BILLING_URL", "SHIPPING_URL", "NATS_URL"} {
		t.Setenv(env, "")
	}
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "NATS_URL" {
			return url
		}
		return ""
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := m.runExample(ctx, "events", exampleOptions{}); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, out.String(), errb.String())
	}
	for _, w := range []string{
		"publishing to order.created", "→ stream ORDERS seq",
		"bill                 → billing    succeeded",
		"ship                 → shipping   succeeded",
		"bill                 → billing    dead: permanent failure: status 422",
		"on_complete.publish  → publish:outcomes succeeded",
		"Outcomes published to orders.done:",
		": succeeded  (bill succeeded 201 {\"id\":\"inv_",
		": partially_succeeded  (bill dead 422",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}

// TestRunExampleEventsNoNATS: without NATS the demo says what to start.
func TestRunExampleEventsNoNATS(t *testing.T) {
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "NATS_URL" {
			return "nats://127.0.0.1:1"
		}
		return ""
	}}
	err := m.runExample(context.Background(), "events", exampleOptions{})
	if !errors.Is(err, errNoNATS) {
		t.Fatalf("err %v, want errNoNATS", err)
	}
	for _, w := range []string{"nats://127.0.0.1:1", "nats-server -js", "docker run --rm -p 4222:4222 nats:latest -js", "NATS_URL=nats://HOST:4222 tandem demo --example events"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("message lacks %q: %v", w, err)
		}
	}
}
