package config

import (
	"math"
	"strings"
	"time"
)

// Defaults, as documented on the fields and in docs/config.md. A zero
// value (absent key, or 0) means "use the default".
const (
	DefaultListen          = ":8080"
	DefaultMaxBody         = Size(1 << 20)
	DefaultShutdownGrace   = Duration(30 * time.Second)
	DefaultDriver          = "sqlite"
	DefaultSQLiteDSN       = "file:tandem.db"
	DefaultLogFormat       = "text"
	DefaultLogLevel        = "info"
	DefaultMethod          = "POST"
	DefaultConnectTimeout  = Duration(2 * time.Second)
	DefaultTotalTimeout    = Duration(10 * time.Second)
	DefaultMaxAttempts     = 8
	DefaultRetryInitial    = Duration(500 * time.Millisecond)
	DefaultRetryMax        = Duration(5 * time.Minute)
	DefaultRetryMultiplier = 2.0
	DefaultRetryMaxAge     = Duration(24 * time.Hour)
	DefaultFailureRatio    = 0.5
	DefaultMinRequests     = 20
	DefaultBreakerWindow   = Duration(60 * time.Second)
	DefaultOpenFor         = Duration(30 * time.Second)
	DefaultHalfOpenProbes  = 1
	DefaultConcurrency     = 32
	DefaultMaxResponseBody = Size(64 << 10)
	DefaultDeadline        = Duration(30 * time.Second)
	DefaultIdempotencyTTL  = Duration(24 * time.Hour)
)

// setDefaults fills every zero value that has a default. It runs after
// interpolation and before validation, and never overwrites a value the
// file set (so validation still sees negative numbers and the like).
func setDefaults(c *Config) {
	s := &c.Server
	s.Listen = or(s.Listen, DefaultListen)
	s.MaxBody = or(s.MaxBody, DefaultMaxBody)
	s.ShutdownGrace = or(s.ShutdownGrace, DefaultShutdownGrace)
	if s.CORS.Enabled() {
		if s.CORS.AllowedMethods == nil {
			s.CORS.AllowedMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
		}
		if s.CORS.AllowedHeaders == nil {
			s.CORS.AllowedHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key"}
		}
	}

	c.Store.Driver = or(c.Store.Driver, DefaultDriver)
	if c.Store.Driver == "sqlite" {
		c.Store.DSN = or(c.Store.DSN, DefaultSQLiteDSN)
	}
	c.Log.Format = or(c.Log.Format, DefaultLogFormat)
	c.Log.Level = or(c.Log.Level, DefaultLogLevel)

	for name, t := range c.Targets {
		if t == nil {
			t = &Target{}
			c.Targets[name] = t
		}
		t.Name = name
		targetDefaults(t)
	}

	for name, src := range c.Sources {
		if src == nil {
			src = &Source{}
			c.Sources[name] = src
		}
		src.Name = name
		sourceDefaults(src)
	}

	for i, r := range c.Routes {
		if r == nil {
			r = &Route{}
			c.Routes[i] = r
		}
		r.Method = strings.ToUpper(or(r.Method, DefaultMethod))
		if r.Respond.Mode == "" {
			r.Respond = Respond{Mode: RespondAccepted}
		}
		if r.Durable == nil {
			r.Durable = ptr(true)
		}
		r.Deadline = or(r.Deadline, DefaultDeadline)
		r.IdempotencyTTL = or(r.IdempotencyTTL, DefaultIdempotencyTTL)
		cacheDefaults(r)
		for j, st := range r.Steps {
			if st == nil {
				st = &Step{}
				r.Steps[j] = st
			}
			if st.Required == nil {
				st.Required = ptr(true)
			}
			// A step without a method uses its target's.
			if st.Method == "" {
				if t := c.Targets[st.Target]; t != nil && st.Target != "" {
					st.Method = t.Method
				}
			}
			st.Method = strings.ToUpper(st.Method)
			if st.Compensate != nil {
				st.Compensate.Method = strings.ToUpper(st.Compensate.Method)
			}
		}
	}
	trustDefaults(c)
}

func targetDefaults(t *Target) {
	t.Method = strings.ToUpper(or(t.Method, DefaultMethod))

	t.Timeout.Total = or(t.Timeout.Total, DefaultTotalTimeout)
	// connect ≤ total must hold when only total is set.
	t.Timeout.Connect = or(t.Timeout.Connect, min(DefaultConnectTimeout, t.Timeout.Total))

	r := &t.Retry
	r.MaxAttempts = or(r.MaxAttempts, DefaultMaxAttempts)
	r.Max = or(r.Max, DefaultRetryMax)
	r.Initial = or(r.Initial, min(DefaultRetryInitial, r.Max))
	r.Multiplier = or(r.Multiplier, DefaultRetryMultiplier)
	r.MaxAge = or(r.MaxAge, DefaultRetryMaxAge)
	r.MaxRetryAfter = or(r.MaxRetryAfter, r.Max)

	b := &t.Breaker
	b.FailureRatio = or(b.FailureRatio, DefaultFailureRatio)
	b.MinRequests = or(b.MinRequests, DefaultMinRequests)
	b.Window = or(b.Window, DefaultBreakerWindow)
	b.OpenFor = or(b.OpenFor, DefaultOpenFor)
	b.HalfOpenProbes = or(b.HalfOpenProbes, DefaultHalfOpenProbes)

	rl := &t.RateLimit
	if rl.Burst == 0 && rl.PerSecond > 0 && !math.IsInf(rl.PerSecond, 0) {
		rl.Burst = int(max(1, math.Ceil(min(rl.PerSecond, math.MaxInt32))))
	}

	t.Concurrency = or(t.Concurrency, DefaultConcurrency)
	t.MaxResponseBody = or(t.MaxResponseBody, DefaultMaxResponseBody)
	strategyDefaults(t)
}

// or returns v, or def when v is the zero value.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func ptr[T any](v T) *T { return &v }
