package resilience

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// BreakerState is a circuit breaker's state. Its values match
// telemetry's tandem_breaker_state gauge: 0 closed, 1 half-open, 2 open.
type BreakerState int

// Breaker states.
const (
	// BreakerClosed lets every call through and counts outcomes.
	BreakerClosed BreakerState = iota
	// BreakerHalfOpen lets a few probe calls through.
	BreakerHalfOpen
	// BreakerOpen lets no call through until its open period ends.
	BreakerOpen
)

// String returns "closed", "half_open" or "open".
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half_open"
	case BreakerOpen:
		return "open"
	}
	return fmt.Sprintf("BreakerState(%d)", int(s))
}

// Breaker defaults, the same as the config's.
const (
	DefaultFailureRatio   = 0.5
	DefaultMinRequests    = 20
	DefaultBreakerWindow  = 60 * time.Second
	DefaultOpenFor        = 30 * time.Second
	DefaultHalfOpenProbes = 1
	DefaultBreakerBuckets = 10
)

// ErrBreakerOpen: the breaker lets no call through now. Allow returns it
// inside a *BreakerOpenError.
var ErrBreakerOpen = errors.New("circuit breaker open")

// BreakerOpenError says that a call was refused and when to ask again.
type BreakerOpenError struct {
	// State is open, or half-open with every probe taken.
	State BreakerState
	// Until is when the breaker half-opens; while half-open it is the time
	// of the refusal (ask again when a probe has reported).
	Until time.Time
}

// Error describes the refusal.
func (e *BreakerOpenError) Error() string {
	if e.State == BreakerHalfOpen {
		return "circuit breaker half-open: every probe is taken"
	}
	return "circuit breaker open until " + e.Until.UTC().Format(time.RFC3339Nano)
}

// Unwrap returns ErrBreakerOpen.
func (e *BreakerOpenError) Unwrap() error { return ErrBreakerOpen }

// BreakerSettings configure a Breaker. A zero field takes its default.
type BreakerSettings struct {
	// FailureRatio opens the breaker when failures/requests over Window
	// reach it. Default DefaultFailureRatio.
	FailureRatio float64
	// MinRequests is how many calls Window must hold before the ratio
	// counts. Default DefaultMinRequests.
	MinRequests int
	// Window is the sliding window over which calls are counted. Default
	// DefaultBreakerWindow.
	Window time.Duration
	// OpenFor is how long the breaker stays open before it half-opens.
	// Default DefaultOpenFor.
	OpenFor time.Duration
	// HalfOpenProbes is how many probe calls run half-open; all must
	// succeed to close. Default DefaultHalfOpenProbes.
	HalfOpenProbes int
	// Buckets is the window's resolution: it slides by Window/Buckets.
	// Default DefaultBreakerBuckets.
	Buckets int
}

// WithDefaults returns s with every zero or invalid field set to its
// default.
func (s BreakerSettings) WithDefaults() BreakerSettings {
	if !(s.FailureRatio > 0 && s.FailureRatio <= 1) {
		s.FailureRatio = DefaultFailureRatio
	}
	if s.MinRequests < 1 {
		s.MinRequests = DefaultMinRequests
	}
	if s.Window <= 0 {
		s.Window = DefaultBreakerWindow
	}
	if s.OpenFor <= 0 {
		s.OpenFor = DefaultOpenFor
	}
	if s.HalfOpenProbes < 1 {
		s.HalfOpenProbes = DefaultHalfOpenProbes
	}
	if s.Buckets < 1 {
		s.Buckets = DefaultBreakerBuckets
	}
	if time.Duration(s.Buckets) > s.Window {
		s.Buckets = int(s.Window)
	}
	return s
}

// Breaker is a circuit breaker over one target's calls, in two steps: a
// caller asks Allow before the call and reports the outcome on the Permit
// after it. It is safe for concurrent use; a nil *Breaker allows every
// call.
//
// Closed, it counts calls and failures in a sliding window; when the
// window holds at least MinRequests calls and failures/calls reaches
// FailureRatio, it opens. Open, it refuses every call for OpenFor, then
// half-opens. Half-open, it lets HalfOpenProbes probe calls through: the
// first failure opens it again, and when every probe has succeeded it
// closes with an empty window.
//
// Every state change starts a new generation; an outcome reported for a
// permit of an older generation (a call that started before the change)
// is ignored.
type Breaker struct {
	s        BreakerSettings
	clock    Clock
	width    time.Duration // of one bucket
	onChange func(BreakerChange)

	mu        sync.Mutex
	state     BreakerState
	gen       uint64
	openUntil time.Time
	buckets   []bucket // ring, indexed by epoch % len
	probes    int      // half-open: probes allowed and not cancelled
	probesOK  int      // half-open: probes that succeeded
}

// bucket counts the calls of one slice of the window.
type bucket struct {
	epoch     int64 // start time / width; identifies the slice
	requests  int
	failures  int
	populated bool
}

// BreakerChange describes one state change, for logs and metrics.
type BreakerChange struct {
	From, To BreakerState
	At       time.Time
	// Requests and Failures in the window when a closed breaker opened.
	Requests, Failures int
	// OpenUntil is when the breaker half-opens, when To is open.
	OpenUntil time.Time
}

// NewBreaker returns a closed breaker. clock nil means SystemClock.
// onChange, when not nil, is called on every state change with the lock
// held (so changes arrive in order): it must not call the breaker.
func NewBreaker(s BreakerSettings, clock Clock, onChange func(BreakerChange)) *Breaker {
	s = s.WithDefaults()
	if clock == nil {
		clock = SystemClock{}
	}
	return &Breaker{
		s:        s,
		clock:    clock,
		width:    s.Window / time.Duration(s.Buckets),
		onChange: onChange,
		buckets:  make([]bucket, s.Buckets),
	}
}

// Permit is the right to make one call, from Allow. Report its outcome
// with Done, or give it back with Cancel; a zero Permit does nothing.
type Permit struct {
	b     *Breaker
	gen   uint64
	probe bool
}

// Allow asks to make one call now. It returns a Permit, or a
// *BreakerOpenError (errors.Is ErrBreakerOpen) saying when to ask again.
func (b *Breaker) Allow() (Permit, error) {
	if b == nil {
		return Permit{}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	b.tick(now)
	switch b.state {
	case BreakerOpen:
		return Permit{}, &BreakerOpenError{State: BreakerOpen, Until: b.openUntil}
	case BreakerHalfOpen:
		if b.probes >= b.s.HalfOpenProbes {
			return Permit{}, &BreakerOpenError{State: BreakerHalfOpen, Until: now}
		}
		b.probes++
		return Permit{b: b, gen: b.gen, probe: true}, nil
	}
	return Permit{b: b, gen: b.gen}, nil
}

// Done reports the call's outcome: success false means it failed in a way
// that says the target is unwell (a transient failure). A permanent
// failure (a 4xx answer) shows the target is up: report it as a success.
func (p Permit) Done(success bool) {
	if p.b == nil {
		return
	}
	p.b.report(p, success)
}

// Cancel gives the permit back without an outcome: the call was not made,
// or its outcome says nothing about the target's health (cut short by
// shutdown, or a 429 asking to slow down).
func (p Permit) Cancel() {
	b := p.b
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.probe && p.gen == b.gen && b.state == BreakerHalfOpen && b.probes > 0 {
		b.probes--
	}
}

func (b *Breaker) report(p Permit, success bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	b.tick(now)
	if p.gen != b.gen {
		return // the call started in another generation
	}
	switch b.state {
	case BreakerClosed:
		bk := b.bucketAt(now)
		bk.requests++
		if success {
			return
		}
		bk.failures++
		req, fail := b.counts(now)
		if req >= b.s.MinRequests && float64(fail) >= b.s.FailureRatio*float64(req) {
			b.open(now)
		}
	case BreakerHalfOpen:
		if !success {
			b.open(now)
			return
		}
		b.probesOK++
		if b.probesOK >= b.s.HalfOpenProbes {
			b.setState(BreakerClosed, now)
		}
	}
}

// Capacity says how many calls Allow would let through now: math.MaxInt
// when closed, the probes left when half-open, 0 when open; with 0 while
// open, until is when the breaker half-opens.
func (b *Breaker) Capacity() (n int, until time.Time) {
	if b == nil {
		return math.MaxInt, time.Time{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tick(b.clock.Now())
	switch b.state {
	case BreakerOpen:
		return 0, b.openUntil
	case BreakerHalfOpen:
		return max(0, b.s.HalfOpenProbes-b.probes), time.Time{}
	}
	return math.MaxInt, time.Time{}
}

// BreakerSnapshot is a breaker's state for display.
type BreakerSnapshot struct {
	State BreakerState
	// Requests and Failures counted in the window (closed only).
	Requests int
	Failures int
	// FailureRatio is Failures/Requests, 0 with no requests.
	FailureRatio float64
	// OpenUntil is when an open breaker half-opens (the next probe); zero
	// unless open.
	OpenUntil time.Time
	// Probes taken while half-open, and how many have succeeded.
	Probes   int
	ProbesOK int
	// Settings in force.
	Settings BreakerSettings
}

// Snapshot returns the breaker's state now. On a nil *Breaker it returns
// a closed, empty snapshot.
func (b *Breaker) Snapshot() BreakerSnapshot {
	if b == nil {
		return BreakerSnapshot{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	b.tick(now)
	s := BreakerSnapshot{State: b.state, Settings: b.s}
	switch b.state {
	case BreakerClosed:
		s.Requests, s.Failures = b.counts(now)
		if s.Requests > 0 {
			s.FailureRatio = float64(s.Failures) / float64(s.Requests)
		}
	case BreakerOpen:
		s.OpenUntil = b.openUntil
	case BreakerHalfOpen:
		s.Probes, s.ProbesOK = b.probes, b.probesOK
	}
	return s
}

// tick half-opens an open breaker whose time is up. b.mu is held.
func (b *Breaker) tick(now time.Time) {
	if b.state == BreakerOpen && !now.Before(b.openUntil) {
		b.setState(BreakerHalfOpen, now)
	}
}

// open opens the breaker for OpenFor from now. b.mu is held.
func (b *Breaker) open(now time.Time) {
	b.openUntil = now.Add(b.s.OpenFor)
	b.setState(BreakerOpen, now)
}

// setState moves to a new generation in state to. b.mu is held.
func (b *Breaker) setState(to BreakerState, now time.Time) {
	ch := BreakerChange{From: b.state, To: to, At: now}
	if ch.From == BreakerClosed {
		ch.Requests, ch.Failures = b.counts(now)
	}
	b.state = to
	b.gen++
	b.probes, b.probesOK = 0, 0
	clear(b.buckets)
	if to == BreakerOpen {
		ch.OpenUntil = b.openUntil
	} else {
		b.openUntil = time.Time{}
	}
	if b.onChange != nil && ch.From != to {
		b.onChange(ch)
	}
}

// epoch numbers the bucket that holds now.
func (b *Breaker) epoch(now time.Time) int64 {
	return now.UnixNano() / int64(b.width)
}

// bucketAt returns the bucket of now, emptied if it held an older slice.
func (b *Breaker) bucketAt(now time.Time) *bucket {
	e := b.epoch(now)
	i := int(((e % int64(len(b.buckets))) + int64(len(b.buckets))) % int64(len(b.buckets)))
	bk := &b.buckets[i]
	if !bk.populated || bk.epoch != e {
		*bk = bucket{epoch: e, populated: true}
	}
	return bk
}

// counts sums the buckets still inside the window that ends at now.
func (b *Breaker) counts(now time.Time) (requests, failures int) {
	e := b.epoch(now)
	oldest := e - int64(len(b.buckets)) + 1
	for _, bk := range b.buckets {
		if bk.populated && bk.epoch >= oldest && bk.epoch <= e {
			requests += bk.requests
			failures += bk.failures
		}
	}
	return requests, failures
}
