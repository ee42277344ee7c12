package config

import (
	"strings"
	"testing"
)

func TestSourcesParseAndDefault(t *testing.T) {
	cfg := mustParse(t, `sources:
  bus: {kind: nats, url: "nats://127.0.0.1:4222", stream: ORDERS, subjects: ["orders.created"]}
  mq: {kind: amqp, url: "amqp://guest:guest@127.0.0.1:5672/", queue: orders, max_in_flight: 64}
targets:
  pay: {url: "http://127.0.0.1:9/pay"}
routes:
  - name: a
    source: bus
    steps: [{name: s, target: pay}]
  - name: b
    source: mq
    steps: [{name: s, target: pay}]
`, nil)
	bus := cfg.Sources["bus"]
	if bus.Name != "bus" || bus.Consumer != "tandem" || bus.Deliver != DeliverAll || bus.MaxInFlight != DefaultMaxInFlight || bus.ContentType != "application/json" || bus.NakDelay != DefaultNakDelay {
		t.Errorf("nats defaults: %+v", bus)
	}
	mq := cfg.Sources["mq"]
	if mq.Prefetch != 64 || mq.MaxInFlight != 64 {
		t.Errorf("amqp prefetch defaults to max_in_flight: %+v", mq)
	}
	if cfg.Routes[0].Source != "bus" || cfg.Routes[0].Path != "" {
		t.Errorf("route source: %+v", cfg.Routes[0])
	}
	if got := cfg.Redacted().Sources["mq"].URL; strings.Contains(got, "guest:guest") {
		t.Errorf("redacted url keeps the password: %s", got)
	}
}

func TestSourcesValidate(t *testing.T) {
	lines := parseErrors(t, `sources:
  bus: {kind: nats, url: "amqp://127.0.0.1:4222", queue: q}
  mq: {kind: amqp, url: "amqp://127.0.0.1/", prefetch: 900, max_in_flight: 10}
  x: {kind: kafka, url: "kafka://h:1"}
targets:
  pay: {url: "http://127.0.0.1:9/pay"}
routes:
  - name: a
    source: bus
    respond: all
    steps: [{name: s, target: pay}]
  - name: b
    source: buss
    steps: [{name: s, target: pay}]
  - name: c
    source: bus
    steps: [{name: s, target: pay}]
  - name: d
    source: mq
    path: /d
    steps: [{name: s, target: pay}]
`)
	want := []string{
		"t.yaml:2: sources.bus.queue: queue is for amqp sources",
		"t.yaml:2: sources.bus.stream: stream is required for a nats source",
		`t.yaml:2: sources.bus.url: url "amqp://127.0.0.1:4222" of a nats source must use nats://`,
		"t.yaml:3: sources.mq.prefetch: prefetch must be between 1 and max_in_flight (10)",
		`t.yaml:4: sources.x.kind: unknown source kind "kafka"`,
		"t.yaml:10: routes[0].respond: a source route answers nobody",
		`t.yaml:13: routes[1].source: unknown source "buss" (did you mean "bus"?)`,
		`t.yaml:16: routes[2].source: source "bus" is already consumed by routes[0]`,
		"routes[3].source: a route has either a path or a source, not both",
	}
	all := strings.Join(lines, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing error %q in:\n%s", w, all)
		}
	}
}
