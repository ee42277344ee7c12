package config

import (
	"strings"
	"testing"
)

func TestOnCompleteParse(t *testing.T) {
	cfg := mustParse(t, `server: {callback_hosts: [hooks.example.com, "*.partner.example", 127.0.0.1]}
sources:
  bus: {kind: nats, url: "nats://127.0.0.1:4222", stream: ORDERS, subjects: ["orders.created"], ack_wait: 5s}
  mq: {kind: amqp, url: "amqp://guest:guest@127.0.0.1:5672/", queue: orders}
targets:
  crm: {url: "http://127.0.0.1:9/crm"}
routes:
  - name: a
    source: bus
    steps: [{name: s, target: crm}]
    on_complete: {target: crm, publish: {source: bus, subject: orders.done}}
  - name: b
    path: /b
    steps: [{name: s, target: crm}]
    on_complete: {publish: {source: mq, exchange: done, routing_key: orders.done}}
`, nil)
	oc := cfg.Routes[0].OnComplete
	if oc == nil || oc.Target != "crm" || oc.Publish.Source != "bus" || oc.Publish.Subject != "orders.done" {
		t.Errorf("on_complete: %+v", oc)
	}
	if p := cfg.Routes[1].OnComplete.Publish; p.Exchange != "done" || p.RoutingKey != "orders.done" {
		t.Errorf("amqp publish: %+v", p)
	}
	if got := cfg.Sources["bus"].AckWait; got.D().Seconds() != 5 {
		t.Errorf("ack_wait = %v", got.D())
	}
	if got := cfg.Sources["mq"].AckWait; got != 0 {
		t.Errorf("amqp ack_wait = %v, want unset", got.D())
	}
	if len(cfg.Server.CallbackHosts) != 3 {
		t.Errorf("callback_hosts: %v", cfg.Server.CallbackHosts)
	}
}

func TestAckWaitDefault(t *testing.T) {
	cfg := mustParse(t, `sources:
  bus: {kind: nats, url: "nats://127.0.0.1:4222", stream: S}
targets:
  crm: {url: "http://127.0.0.1:9/crm"}
routes:
  - {name: a, source: bus, steps: [{name: s, target: crm}]}
`, nil)
	if got := cfg.Sources["bus"].AckWait; got != DefaultAckWait {
		t.Errorf("ack_wait default = %v, want 30s", got.D())
	}
}

func TestOnCompleteValidate(t *testing.T) {
	lines := parseErrors(t, `server: {callback_hosts: ["https://x.example", "a.*.example", ""]}
sources:
  bus: {kind: nats, url: "nats://127.0.0.1:4222", stream: S, ack_wait: 10ms}
  mq: {kind: amqp, url: "amqp://127.0.0.1/", queue: q, ack_wait: 5s}
targets:
  crm: {url: "http://127.0.0.1:9/crm"}
routes:
  - name: a
    path: /a
    steps: [{name: s, target: crm}]
    on_complete: {}
  - name: b
    path: /b
    steps: [{name: s, target: crm}]
    on_complete: {target: crn, publish: {source: bus}}
  - name: c
    path: /c
    steps: [{name: s, target: crm}]
    on_complete: {publish: {source: mq, subject: x}}
  - name: d
    path: /d
    durable: false
    respond: all
    steps: [{name: s, target: crm}]
    on_complete: {publish: {source: buss, subject: x}}
`)
	want := []string{
		`server.callback_hosts[0]: callback host "https://x.example" must be a bare host name`,
		`server.callback_hosts[1]: callback host "a.*.example": a wildcard is only allowed`,
		`server.callback_hosts[2]: empty host`,
		"sources.bus.ack_wait: ack_wait must be at least 1s",
		"sources.mq.ack_wait: ack_wait is for nats sources",
		"routes[0].on_complete: on_complete needs a target, a publish, or both",
		`routes[1].on_complete.target: unknown target "crn" (did you mean "crm"?)`,
		`routes[1].on_complete.publish.subject: subject is required to publish to nats source "bus"`,
		"routes[2].on_complete.publish.subject: subject is for nats sources",
		"routes[2].on_complete.publish: exchange or routing_key is required",
		"routes[3].on_complete: on_complete needs a durable route",
		`routes[3].on_complete.publish.source: unknown source "buss"`,
	}
	all := strings.Join(lines, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing error %q in:\n%s", w, all)
		}
	}
}

func TestMQTTSource(t *testing.T) {
	cfg := mustParse(t, `sources:
  sensors: {kind: mqtt, url: "tcp://127.0.0.1:1883", topic: "plant/+/reading"}
targets:
  crm: {url: "http://127.0.0.1:9/crm"}
routes:
  - {name: a, source: sensors, steps: [{name: s, target: crm}]}
`, nil)
	if s := cfg.Sources["sensors"]; s.ClientID != "tandem-sensors" || s.Topic != "plant/+/reading" || s.MaxInFlight != DefaultMaxInFlight {
		t.Errorf("mqtt defaults: %+v", s)
	}
	lines := parseErrors(t, `sources:
  m: {kind: mqtt, url: "nats://127.0.0.1:1883", stream: S, client_id: abcdefghijklmnopqrstuvwxyz}
  n: {kind: nats, url: "nats://127.0.0.1:4222", stream: S, topic: x}
targets:
  crm: {url: "http://127.0.0.1:9/crm"}
routes:
  - {name: a, source: m, steps: [{name: s, target: crm}], on_complete: {publish: {source: m, subject: x}}}
`)
	want := []string{
		"sources.m.topic: topic is required for an mqtt source",
		"sources.m.stream: stream is not for mqtt sources",
		`sources.m.url: url "nats://127.0.0.1:1883" of a mqtt source must use tcp://`,
		"sources.m.client_id: client_id \"abcdefghijklmnopqrstuvwxyz\" is longer than 23 characters",
		"sources.n.topic: topic is for mqtt sources",
		`routes[0].on_complete.publish.source: source "m" is an mqtt source`,
	}
	all := strings.Join(lines, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing error %q in:\n%s", w, all)
		}
	}
}
