package config

import (
	"fmt"
	"net"
	"strings"
)

// OnComplete sends a message's final summary onward once every step of it
// is final: a durable delivery to a target, and/or a publish to a broker
// source. See docs/events.md.
type OnComplete struct {
	// Target names an entry under targets that receives the summary as a
	// POST (retried, signed and authenticated like any delivery).
	Target string `yaml:"target"`
	// Publish sends the summary to a broker, through one of the sources.
	Publish *Publish `yaml:"publish"`
}

// Publish is where a summary is published: a NATS subject (JetStream,
// acknowledged by the stream) or an AMQP exchange and routing key
// (publisher confirms).
type Publish struct {
	// Source names an entry under sources: its url is the broker. Required.
	Source string `yaml:"source"`
	// Subject to publish to (nats). Required for a nats source; a
	// JetStream stream must capture it.
	Subject string `yaml:"subject"`
	// Exchange to publish to (amqp); "" is the default exchange.
	Exchange string `yaml:"exchange"`
	// RoutingKey of the published message (amqp). With the default
	// exchange it names the queue.
	RoutingKey string `yaml:"routing_key"`
}

// onComplete checks a route's on_complete.
func (v *validator) onComplete(p string, r *Route) {
	oc := r.OnComplete
	if oc == nil {
		return
	}
	op := joinKey(p, "on_complete")
	if oc.Target == "" && oc.Publish == nil {
		v.errf(op, "on_complete needs a target, a publish, or both")
	}
	if !r.IsDurable() {
		v.errf(op, "on_complete needs a durable route (remove durable: false)")
	}
	if oc.Target != "" {
		v.targetRef(joinKey(op, "target"), oc.Target)
	}
	if pb := oc.Publish; pb != nil {
		pp := joinKey(op, "publish")
		src, ok := v.cfg.Sources[pb.Source]
		switch {
		case pb.Source == "":
			v.errf(joinKey(pp, "source"), "source is required: the broker to publish to")
			return
		case !ok:
			v.errf(joinKey(pp, "source"), "%s", withHint(fmt.Sprintf("unknown source %q", pb.Source), pb.Source, sortedKeys(v.cfg.Sources)))
			return
		}
		switch src.Kind {
		case SourceNATS:
			if pb.Subject == "" {
				v.errf(joinKey(pp, "subject"), "subject is required to publish to nats source %q", pb.Source)
			} else if strings.ContainsAny(pb.Subject, " \t\r\n*>") {
				v.errf(joinKey(pp, "subject"), "subject %s must be a plain subject: no spaces or wildcards", v.c.quote(joinKey(pp, "subject"), pb.Subject))
			}
			if pb.Exchange != "" || pb.RoutingKey != "" {
				v.errf(pp, "exchange and routing_key are for amqp sources; a nats source takes subject")
			}
		case SourceMQTT:
			v.errf(joinKey(pp, "source"), "source %q is an mqtt source: on_complete publishes to nats or amqp sources", pb.Source)
		case SourceAMQP:
			if pb.Subject != "" {
				v.errf(joinKey(pp, "subject"), "subject is for nats sources; an amqp source takes exchange and routing_key")
			}
			if pb.Exchange == "" && pb.RoutingKey == "" {
				v.errf(pp, "exchange or routing_key is required to publish to amqp source %q", pb.Source)
			}
		}
	}
}

// callbackHosts checks server.callback_hosts: host names, IP addresses,
// or "*.example.com" (any name below example.com).
func (v *validator) callbackHosts() {
	for i, h := range v.cfg.Server.CallbackHosts {
		p := joinIndex("server.callback_hosts", i)
		name := strings.TrimPrefix(h, "*.")
		switch {
		case h == "":
			v.errf(p, "empty host")
		case strings.ContainsAny(h, ":/@ \t?#") && net.ParseIP(h) == nil:
			v.errf(p, "callback host %s must be a bare host name or IP address, e.g. hooks.example.com or *.example.com (no scheme, port or path)", v.c.quote(p, h))
		case strings.Contains(name, "*"):
			v.errf(p, "callback host %s: a wildcard is only allowed as a leading \"*.\"", v.c.quote(p, h))
		case name == "" || strings.HasPrefix(name, ".") || strings.HasSuffix(name, "."):
			v.errf(p, "callback host %s is not a host name", v.c.quote(p, h))
		}
	}
}
