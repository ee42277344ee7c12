package target

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Balance modes of a HostPool.
const (
	// BalanceRoundRobin takes the healthy hosts in turn.
	BalanceRoundRobin = "round_robin"
	// BalanceLeastInFlight takes the healthy host with the fewest attempts
	// in flight (ties in turn).
	BalanceLeastInFlight = "least_in_flight"
)

// Host states, as HostSnapshot shows them.
const (
	HostHealthy = "healthy"
	// HostEjected: the host failed Failures times in a row and is left out
	// until its cool-off ends.
	HostEjected = "ejected"
	// HostProbing: the cool-off ended and one attempt is trying the host;
	// its outcome brings the host back or ejects it again.
	HostProbing = "probing"
)

// Contract checks calls against a target's API contract; the engine
// passes *contract.Operation. CheckRequest's error stops the request
// before it is sent (a permanent failure); CheckResponse's is kept in
// Result.Violation.
type Contract interface {
	CheckRequest(header http.Header, body []byte) error
	CheckResponse(status int, header http.Header, body []byte, truncated bool) error
}

// HostPoolOptions configure a HostPool.
type HostPoolOptions struct {
	// URLs are the hosts' base URLs. The first is the one requests are
	// built against (Endpoint.URL); each attempt swaps in its host's.
	// At least one.
	URLs []string
	// Balance is BalanceRoundRobin (default) or BalanceLeastInFlight.
	Balance string
	// Failures in a row that eject a host. Default 5.
	Failures int
	// CoolOff is how long an ejected host is left out. Default 30s.
	CoolOff time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// HostPool spreads one target's attempts over several hosts with passive
// health checks: each host is a small breaker of its own, opened
// (ejected) by consecutive failures (transport errors, timeouts, 5xx),
// half-open after the cool-off (one probe at a time), closed by a success.
// While every host is ejected, attempts go to the host whose cool-off ends
// first: the target's own breaker, not the pool, decides when to stop
// sending altogether. A retry of the same Idempotency-Key prefers another
// host than its last attempt's. It is safe for concurrent use.
type HostPool struct {
	opts HostPoolOptions

	mu    sync.Mutex
	hosts []*host
	next  int            // round robin position
	last  map[string]int // idempotency key → host of its last attempt
}

type host struct {
	url          string
	inFlight     int
	fails        int // consecutive
	ejectedUntil time.Time
	ejected      bool
	probing      bool
	ejections    int64
	attempts     int64
	failures     int64
}

// lastMax bounds HostPool.last; past it the memory starts afresh (it only
// steers retries).
const lastMax = 8192

// NewHostPool builds a pool over opts.URLs.
func NewHostPool(opts HostPoolOptions) *HostPool {
	if opts.Balance == "" {
		opts.Balance = BalanceRoundRobin
	}
	if opts.Failures <= 0 {
		opts.Failures = 5
	}
	if opts.CoolOff <= 0 {
		opts.CoolOff = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &HostPool{opts: opts, last: map[string]int{}}
	for _, u := range opts.URLs {
		p.hosts = append(p.hosts, &host{url: u})
	}
	return p
}

// HostSnapshot is one host's state, for GET /v1/targets and the metrics.
type HostSnapshot struct {
	URL   string
	State string // HostHealthy, HostEjected or HostProbing
	// InFlight counts attempts on the host now; Failures its failures in
	// a row.
	InFlight int
	Failures int
	// EjectedUntil is when the cool-off ends (zero unless ejected).
	EjectedUntil time.Time
	// Attempts, FailuresTotal and Ejections count since the pool began.
	Attempts      int64
	FailuresTotal int64
	Ejections     int64
}

// Snapshot returns every host's state, in configured order.
func (p *HostPool) Snapshot() []HostSnapshot {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opts.Now()
	out := make([]HostSnapshot, len(p.hosts))
	for i, h := range p.hosts {
		s := HostSnapshot{URL: h.url, State: HostHealthy, InFlight: h.inFlight, Failures: h.fails,
			Attempts: h.attempts, FailuresTotal: h.failures, Ejections: h.ejections}
		switch {
		case h.probing:
			s.State = HostProbing
		case h.ejected && now.Before(h.ejectedUntil):
			s.State, s.EjectedUntil = HostEjected, h.ejectedUntil
		case h.ejected:
			s.State = HostProbing // due for its probe
		}
		out[i] = s
	}
	return out
}

// pick chooses the host of one attempt and counts it in flight.
func (p *HostPool) pick(key string) *host {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opts.Now()
	avoid := -1
	if key != "" {
		if i, ok := p.last[key]; ok {
			avoid = i
		}
	}
	usable := func(h *host) bool {
		return !h.ejected || (!h.probing && !now.Before(h.ejectedUntil))
	}
	n := len(p.hosts)
	best := -1
	for pass := 0; pass < 2 && best < 0; pass++ {
		for k := range n {
			i := (p.next + k) % n
			h := p.hosts[i]
			if !usable(h) || (pass == 0 && i == avoid) {
				continue
			}
			if best < 0 || (p.opts.Balance == BalanceLeastInFlight && h.inFlight < p.hosts[best].inFlight) {
				best = i
				if p.opts.Balance != BalanceLeastInFlight {
					break
				}
			}
		}
	}
	if best < 0 {
		// Every host is ejected (or probing): try the one whose cool-off
		// ends first rather than refuse the attempt.
		for i, h := range p.hosts {
			if best < 0 || h.ejectedUntil.Before(p.hosts[best].ejectedUntil) {
				best = i
			}
		}
	}
	h := p.hosts[best]
	if h.ejected && !h.probing {
		h.probing = true
	}
	p.next = (best + 1) % n
	h.inFlight++
	h.attempts++
	if key != "" {
		if len(p.last) >= lastMax {
			clear(p.last)
		}
		p.last[key] = best
	}
	return h
}

// done records an attempt's outcome on its host.
func (p *HostPool) done(h *host, res *Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h.inFlight--
	probe := h.probing
	h.probing = false
	switch hostVerdict(res) {
	case verdictNeutral:
		return
	case verdictUp:
		h.fails = 0
		h.ejected = false
		h.ejectedUntil = time.Time{}
	case verdictDown:
		h.fails++
		h.failures++
		if probe || (!h.ejected && h.fails >= p.opts.Failures) {
			h.ejected = true
			h.ejectedUntil = p.opts.Now().Add(p.opts.CoolOff)
			h.ejections++
		}
	}
}

type hostVerdictKind int

const (
	verdictNeutral hostVerdictKind = iota
	verdictUp
	verdictDown
)

// hostVerdict says what an attempt shows of its host: a transport error,
// a timeout or a 5xx shows it down; any other answer (4xx included, 429
// too: it is up and asks to slow down) shows it up; a request never sent
// or cancelled by tandem shows nothing.
func hostVerdict(res *Result) hostVerdictKind {
	var te *Error
	if res.Err != nil && errors.As(res.Err, &te) {
		switch te.Kind {
		case KindCanceled, KindRequest, KindURL:
			return verdictNeutral
		case KindAuth:
			if te.Status != 0 {
				return verdictUp // the host answered (401)
			}
			return verdictNeutral // the token endpoint failed, not the host
		case KindStatus:
		default:
			return verdictDown
		}
	}
	if res.Status >= 500 {
		return verdictDown
	}
	if res.Status == 0 {
		return verdictDown
	}
	return verdictUp
}

// rebase moves raw (built against base, the first host's URL) onto the
// chosen host's base URL.
func rebase(raw, base, to string) string {
	if rest, ok := strings.CutPrefix(raw, base); ok {
		return to + rest
	}
	return raw
}

// send makes one call: the contract's check of the request, the host of
// a pool, the call, and the contract's check of the answer.
func (c *Caller) send(ctx context.Context, r *Request, ep *Endpoint) *Result {
	if ep.Contract != nil {
		h := r.Header
		if h.Get("Content-Type") == "" {
			h = ep.Header
		}
		if err := ep.Contract.CheckRequest(h, r.Body); err != nil {
			return &Result{Err: &Error{Kind: KindRequest, Err: err, msg: "contract: " + err.Error()}}
		}
	}
	var res *Result
	if ep.Hosts == nil {
		res = c.do(ctx, r, ep)
	} else {
		h := ep.Hosts.pick(r.IdempotencyKey)
		rr := *r
		rr.URL = rebase(firstNonEmpty(r.URL, ep.URL), ep.URL, h.url)
		res = c.do(ctx, &rr, ep)
		res.Host = h.url
		ep.Hosts.done(h, res)
	}
	if ep.Contract != nil && res.Status != 0 {
		if err := ep.Contract.CheckResponse(res.Status, res.Header, res.Body, res.Truncated); err != nil {
			res.Violation = "contract: " + err.Error()
		}
	}
	return res
}
