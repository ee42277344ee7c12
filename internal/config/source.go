package config

import (
	"fmt"
	"net/url"
	"sort"
	"time"
)

// Source kinds.
const (
	SourceNATS = "nats"
	SourceAMQP = "amqp"
	SourceMQTT = "mqtt"
)

// Deliver policies of a NATS source's consumer.
const (
	DeliverAll  = "all"
	DeliverNew  = "new"
	DeliverLast = "last"
)

// Source defaults.
const (
	DefaultMaxInFlight       = 256
	DefaultSourceContentType = "application/json"
	DefaultNakDelay          = Duration(time.Second)
	DefaultAckWait           = Duration(30 * time.Second)
)

// Source is a message broker a route consumes from instead of serving a
// path. A broker message is acknowledged only after its message is
// durably committed (internal/source).
type Source struct {
	// Name is the key under sources (set by the loader).
	Name string `yaml:"-"`
	// Kind is nats (JetStream), amqp (RabbitMQ) or mqtt (QoS 1). Required.
	Kind string `yaml:"kind"`
	// URL of the broker: nats://host:4222, amqp://user:pass@host:5672/vhost.
	// Required.
	URL string `yaml:"url"`

	// Stream is the JetStream stream (nats). Required for nats.
	Stream string `yaml:"stream"`
	// Subjects of the stream; when set, the stream is created (or its
	// subjects updated) at start. Empty: the stream must exist.
	Subjects []string `yaml:"subjects"`
	// Consumer is the durable consumer's name (nats). Default "tandem".
	Consumer string `yaml:"consumer"`
	// Deliver is where a new consumer starts: all, new or last. Default all.
	Deliver string `yaml:"deliver"`

	// Queue is the AMQP queue consumed (amqp). Required for amqp.
	Queue string `yaml:"queue"`
	// Prefetch is the AMQP channel's prefetch count (amqp). Default
	// max_in_flight; at most max_in_flight.
	Prefetch int `yaml:"prefetch"`
	// Declare declares the queue (durable) at start (amqp). Default false.
	Declare bool `yaml:"declare"`

	// Topic is the MQTT topic filter subscribed with QoS 1 (mqtt); it may
	// hold + and # wildcards. Required for mqtt.
	Topic string `yaml:"topic"`
	// ClientID is the MQTT client id of tandem's persistent session
	// (mqtt): the broker keeps unacknowledged messages for it across
	// reconnects and restarts. Default "tandem-<source name>".
	ClientID string `yaml:"client_id"`

	// MaxInFlight caps the broker messages received and not yet
	// acknowledged (the consumer's MaxAckPending for nats). Default 256.
	MaxInFlight int `yaml:"max_in_flight"`
	// IdempotencyHeader names a message header whose value is the
	// idempotency key. Default: Nats-Msg-Id (nats), message-id (amqp).
	IdempotencyHeader string `yaml:"idempotency_header"`
	// ContentType is assumed for messages that carry none. Default
	// application/json: a body that is not valid JSON is dead-lettered.
	ContentType string `yaml:"content_type"`
	// NakDelay is how long a message waits before redelivery when the store
	// is unavailable. Default 1s.
	NakDelay Duration `yaml:"nak_delay"`
	// AckWait is how long the NATS server waits for an acknowledgement
	// before it delivers a message again (the consumer's AckWait): after a
	// crash, unacknowledged messages come back this long after they were
	// delivered (nats). Default 30s; at least 1s.
	AckWait Duration `yaml:"ack_wait"`
}

func sourceDefaults(s *Source) {
	s.MaxInFlight = or(s.MaxInFlight, DefaultMaxInFlight)
	s.ContentType = or(s.ContentType, DefaultSourceContentType)
	s.NakDelay = or(s.NakDelay, DefaultNakDelay)
	switch s.Kind {
	case SourceNATS:
		s.Consumer = or(s.Consumer, "tandem")
		s.Deliver = or(s.Deliver, DeliverAll)
		s.AckWait = or(s.AckWait, DefaultAckWait)
	case SourceAMQP:
		s.Prefetch = or(s.Prefetch, s.MaxInFlight)
	case SourceMQTT:
		s.ClientID = or(s.ClientID, "tandem-"+s.Name)
	}
}

// sources checks every configured source.
func (v *validator) sources() {
	names := make([]string, 0, len(v.cfg.Sources))
	for name := range v.cfg.Sources {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v.source(joinKey("sources", name), v.cfg.Sources[name])
	}
}

func (v *validator) source(p string, s *Source) {
	if !validName(s.Name) {
		v.errf(p, "invalid source name %q: use letters, digits, '-', '_' and '.'", s.Name)
	}
	up := joinKey(p, "url")
	wantScheme := map[string][]string{SourceNATS: {"nats", "tls"}, SourceAMQP: {"amqp", "amqps"}, SourceMQTT: {"tcp", "ssl"}}[s.Kind]
	switch s.Kind {
	case SourceNATS:
		if s.Stream == "" {
			v.errf(joinKey(p, "stream"), "stream is required for a nats source")
		}
		switch s.Deliver {
		case DeliverAll, DeliverNew, DeliverLast:
		default:
			v.errf(joinKey(p, "deliver"), "unknown deliver policy %s: use all, new or last", v.c.quote(joinKey(p, "deliver"), s.Deliver))
		}
		for _, k := range []struct {
			set  bool
			name string
		}{{s.Queue != "", "queue"}, {s.Prefetch != 0, "prefetch"}, {s.Declare, "declare"}} {
			if k.set {
				v.errf(joinKey(p, k.name), "%s is for amqp sources; a nats source uses stream, subjects and consumer", k.name)
			}
		}
	case SourceAMQP:
		if s.Queue == "" {
			v.errf(joinKey(p, "queue"), "queue is required for an amqp source")
		}
		if s.Prefetch < 0 || s.Prefetch > s.MaxInFlight {
			v.errf(joinKey(p, "prefetch"), "prefetch must be between 1 and max_in_flight (%d)", s.MaxInFlight)
		}
		for _, k := range []struct {
			set  bool
			name string
		}{{s.Stream != "", "stream"}, {len(s.Subjects) > 0, "subjects"}, {s.Consumer != "", "consumer"}, {s.Deliver != "", "deliver"}, {s.AckWait != 0, "ack_wait"}} {
			if k.set {
				v.errf(joinKey(p, k.name), "%s is for nats sources; an amqp source uses queue, prefetch and declare", k.name)
			}
		}
	case SourceMQTT:
		if s.Topic == "" {
			v.errf(joinKey(p, "topic"), "topic is required for an mqtt source")
		}
		if len(s.ClientID) > 23 && !v.c.reported(joinKey(p, "client_id")) {
			// MQTT 3.1.1 servers must accept 1 to 23 characters; longer is
			// up to the server.
			v.errf(joinKey(p, "client_id"), "client_id %s is longer than 23 characters, which MQTT servers need not accept", v.c.quote(joinKey(p, "client_id"), s.ClientID))
		}
		for _, k := range []struct {
			set  bool
			name string
		}{{s.Stream != "", "stream"}, {len(s.Subjects) > 0, "subjects"}, {s.Consumer != "", "consumer"}, {s.Deliver != "", "deliver"},
			{s.Queue != "", "queue"}, {s.Prefetch != 0, "prefetch"}, {s.Declare, "declare"}, {s.AckWait != 0, "ack_wait"}, {s.IdempotencyHeader != "", "idempotency_header"}} {
			if k.set {
				v.errf(joinKey(p, k.name), "%s is not for mqtt sources; an mqtt source uses topic and client_id", k.name)
			}
		}
	default:
		v.errf(joinKey(p, "kind"), "%s", withHint(fmt.Sprintf("unknown source kind %q: use nats, amqp or mqtt", s.Kind), s.Kind, []string{SourceNATS, SourceAMQP, SourceMQTT}))
	}
	if s.Kind == SourceNATS || s.Kind == SourceAMQP {
		for _, k := range []struct {
			set  bool
			name string
		}{{s.Topic != "", "topic"}, {s.ClientID != "", "client_id"}} {
			if k.set {
				v.errf(joinKey(p, k.name), "%s is for mqtt sources", k.name)
			}
		}
	}
	if s.URL == "" {
		v.errf(up, "url is required (e.g. \"nats://127.0.0.1:4222\" or \"amqp://guest:guest@127.0.0.1:5672/\")")
	} else if u, err := url.Parse(s.URL); err != nil || u.Host == "" {
		v.errf(up, "invalid url %s: write scheme://host:port", v.c.quote(up, s.URL))
	} else if wantScheme != nil && u.Scheme != wantScheme[0] && u.Scheme != wantScheme[1] {
		v.errf(up, "url %s of a %s source must use %s:// or %s://", v.c.quote(up, s.URL), s.Kind, wantScheme[0], wantScheme[1])
	}
	if s.MaxInFlight < 1 || s.MaxInFlight > 65535 {
		v.errf(joinKey(p, "max_in_flight"), "max_in_flight must be between 1 and 65535")
	}
	if s.Kind == SourceNATS && s.AckWait.D() < time.Second {
		v.errf(joinKey(p, "ack_wait"), "ack_wait must be at least 1s")
	}
	if s.NakDelay.D() < 0 {
		v.errf(joinKey(p, "nak_delay"), "nak_delay must not be negative")
	}
	if h := s.IdempotencyHeader; h != "" && !validToken(h) {
		v.errf(joinKey(p, "idempotency_header"), "invalid header name %s", v.c.quote(joinKey(p, "idempotency_header"), h))
	}
}

// routeSource checks the source a route names, and the route settings a
// source route cannot use: nobody waits for an answer on a broker.
func (v *validator) routeSource(p string, r *Route, used map[string]int, i int) {
	sp := joinKey(p, "source")
	if r.Path != "" {
		v.errf(sp, "a route has either a path or a source, not both")
		return
	}
	if _, ok := v.cfg.Sources[r.Source]; !ok {
		v.errf(sp, "%s", withHint(fmt.Sprintf("unknown source %q", r.Source), r.Source, sortedKeys(v.cfg.Sources)))
		return
	}
	if j, dup := used[r.Source]; dup {
		v.errf(sp, "source %q is already consumed by routes[%d]", r.Source, j)
	} else {
		used[r.Source] = i
	}
	if !r.IsDurable() {
		v.errf(joinKey(p, "durable"), "a source route is durable (a broker message is acknowledged after its commit)")
	}
	if rp := joinKey(p, "respond"); r.Respond.Mode != RespondAccepted && !v.c.reported(rp) {
		v.errf(rp, "a source route answers nobody: respond must be accepted")
	}
}
