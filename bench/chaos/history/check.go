package history

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kind names a violation.
type Kind string

// The violations Check reports.
const (
	Lost              Kind = "lost"
	DuplicateOutside  Kind = "duplicate outside a crash window"
	Concurrent        Kind = "concurrent double"
	SagaForwardAfter  Kind = "saga: forward step after compensation began"
	SagaOrder         Kind = "saga: compensation out of order"
	SagaNeverRan      Kind = "saga: compensation of a step that never ran"
	SagaNotUndone     Kind = "saga: step done but never compensated"
	TwoMessagesOneKey Kind = "two messages for one Idempotency-Key"
	MissingKey        Kind = "request without an Idempotency-Key"
)

// Violation is one broken promise, with what shows it.
type Violation struct {
	Kind    Kind
	Key     string // the Idempotency-Key or message id it is about
	Details string
}

// String formats the violation on one line: kind, key, details.
func (v Violation) String() string { return fmt.Sprintf("%s: %s: %s", v.Kind, v.Key, v.Details) }

// Options tune the checker's tolerances.
type Options struct {
	// AbandonSlack is how long a request the client abandoned may seem to
	// run on at the target while the client's next attempt arrives: the
	// target notices a closed connection a moment after it closed. Only
	// abandoned requests get it. Default 100ms.
	AbandonSlack time.Duration
	// Lease is how long a claim lasts (timeout.total + lease_margin): the
	// claim that sent a request was made at most this long before it, and
	// a fault on its sender since then can cost the request's record.
	// Default 0: the window starts at the request.
	Lease time.Duration
	// MatchSlack widens a recorded attempt's [start, start+duration] when
	// matching a target's request to it (clock reads, duration_ms
	// rounding). Default 3ms.
	MatchSlack time.Duration
}

// Report is what Check found: counts, then every violation.
type Report struct {
	Acknowledged int
	Delivered    int // acknowledged and fully accounted for
	Lost         int
	Requests     int

	// Keys requested again after their first 2xx, by what explains it.
	DuplicatesInCrashWindow int
	DuplicatesLostAnswer    int
	DuplicatesOutside       int

	ConcurrentDoubles int // pairs of overlapping requests of one key
	ConcurrentExcused int // overlaps within AbandonSlack of an abandoned request

	SagaMessages          int
	SagaCompensated       int // saga messages that ran a compensation
	SagaViolations        int
	CompensatedUnknown    int // compensations of a step whose outcome tandem could not know
	TwoMessagesForOneKey  int
	Uncounted             int // requests on the wire no recorded attempt counts (see checkCounted)
	Stale                 int // requests after a 2xx that their client had already abandoned
	Kills, Stops          int
	DBCuts, DBLatencies   int
	MessagesByStatus      map[string]int
	Violations            []Violation
	UnmatchedAckedMessage int // acked ids the store does not know (part of Lost)
}

// Failed reports whether any promise was broken.
func (r *Report) Failed() bool { return len(r.Violations) > 0 }

// checker holds the indexes of one history.
type checker struct {
	h      *History
	opt    Options
	rep    *Report
	routes map[string]*Route
	msgs   map[string]*Message
	byKey  map[string][]Request // sorted by Start
}

// Check checks h and returns the report.
func Check(h *History, opt Options) *Report {
	if opt.AbandonSlack == 0 {
		opt.AbandonSlack = 100 * time.Millisecond
	}
	if opt.MatchSlack == 0 {
		opt.MatchSlack = 3 * time.Millisecond
	}
	c := &checker{
		h: h, opt: opt,
		rep:    &Report{Acknowledged: len(h.Acks), Requests: len(h.Requests), MessagesByStatus: map[string]int{}},
		routes: map[string]*Route{},
		msgs:   map[string]*Message{},
		byKey:  map[string][]Request{},
	}
	for i := range h.Routes {
		c.routes[h.Routes[i].Name] = &h.Routes[i]
	}
	for i := range h.Messages {
		m := &h.Messages[i]
		c.msgs[m.ID] = m
		c.rep.MessagesByStatus[m.Status]++
	}
	for _, r := range h.Requests {
		if r.Key == "" {
			c.violate(MissingKey, r.Target, "from %s at %s", sender(r.Sender), stamp(r.Start))
			continue
		}
		c.byKey[r.Key] = append(c.byKey[r.Key], r)
	}
	for k := range c.byKey {
		slices.SortStableFunc(c.byKey[k], func(a, b Request) int { return a.Start.Compare(b.Start) })
	}
	for _, f := range h.Faults {
		switch f.Kind {
		case Kill:
			c.rep.Kills++
		case Stop:
			c.rep.Stops++
		case DBCut:
			c.rep.DBCuts++
		case DBLatency:
			c.rep.DBLatencies++
		}
	}
	c.checkKeys()
	c.checkAcks()
	keys := make([]string, 0, len(c.byKey))
	for k := range c.byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		c.checkDuplicates(k)
		c.checkOverlaps(k)
		c.checkCounted(k)
	}
	for i := range h.Messages {
		if r := c.routes[h.Messages[i].Route]; r != nil && r.Saga {
			c.checkSaga(&h.Messages[i], r)
		}
	}
	return c.rep
}

func (c *checker) violate(k Kind, key, format string, args ...any) {
	c.rep.Violations = append(c.rep.Violations, Violation{Kind: k, Key: key, Details: fmt.Sprintf(format, args...)})
	if strings.HasPrefix(string(k), "saga:") {
		c.rep.SagaViolations++
	}
}

// checkKeys: one message per route and Idempotency-Key.
func (c *checker) checkKeys() {
	seen := map[string]string{}
	for _, m := range c.h.Messages {
		if m.IdempotencyKey == "" {
			continue
		}
		k := m.Route + "\x00" + m.IdempotencyKey
		if prev, ok := seen[k]; ok {
			c.rep.TwoMessagesForOneKey++
			c.violate(TwoMessagesOneKey, m.IdempotencyKey, "route %s: messages %s and %s", m.Route, prev, m.ID)
			continue
		}
		seen[k] = m.ID
	}
}

// settled reports whether a message's status is final for its route.
func settled(m *Message, r *Route) bool {
	switch m.Status {
	case "succeeded", "compensated":
		return true
	case "failed":
		// A saga whose first step failed for good has nothing to undo and
		// ends failed; a plain route's failed message has a dead step,
		// which the lost check names.
		return true
	case "partially_succeeded":
		return !r.Saga
	}
	return false
}

// effect returns the first request of key that had its effect.
func (c *checker) effect(key string) (Request, bool) {
	for _, r := range c.byKey[key] {
		if r.Outcome.Effect() {
			return r, true
		}
	}
	return Request{}, false
}

// checkAcks: every acknowledged message is stored, settled, and delivered.
func (c *checker) checkAcks() {
	for _, a := range c.h.Acks {
		m := c.msgs[a.MessageID]
		if m == nil {
			c.rep.Lost++
			c.rep.UnmatchedAckedMessage++
			c.violate(Lost, a.MessageID, "acknowledged (key %s, %s) but not in the store", a.Key, a.At.Format(time.RFC3339Nano))
			continue
		}
		r := c.routes[m.Route]
		if r == nil {
			c.rep.Lost++
			c.violate(Lost, m.ID, "stored under route %q, which the history does not know", m.Route)
			continue
		}
		reasons := c.undelivered(m, r)
		if len(reasons) == 0 {
			c.rep.Delivered++
			continue
		}
		c.rep.Lost++
		c.violate(Lost, m.ID, "key %s, status %s: %s", a.Key, m.Status, strings.Join(reasons, "; "))
	}
}

// undelivered says why an acknowledged message is not accounted for.
func (c *checker) undelivered(m *Message, r *Route) []string {
	var why []string
	if !settled(m, r) {
		why = append(why, "not settled")
	}
	deliveries := map[string]*Delivery{}
	for i := range m.Deliveries {
		deliveries[m.Deliveries[i].Step] = &m.Deliveries[i]
	}
	for _, s := range r.Steps {
		key := m.ID + "." + s.Name
		_, done := c.effect(key)
		d := deliveries[s.Name]
		if d == nil {
			why = append(why, fmt.Sprintf("step %s has no delivery", s.Name))
			continue
		}
		recordedDone := d.Status == "succeeded" || d.Status == "compensating" || d.Status == "compensated"
		switch {
		case recordedDone && !done:
			why = append(why, fmt.Sprintf("step %s recorded %s, but its target never answered 2xx (%d requests)", s.Name, d.Status, len(c.byKey[key])))
		case !done && (!r.Saga || m.Status == "succeeded"):
			// A plain route must reach every target; so must a saga that
			// says it succeeded. A compensated saga's undone steps are the
			// saga checks' business.
			why = append(why, fmt.Sprintf("step %s never reached its target with a 2xx (status %s, %d requests)", s.Name, d.Status, len(c.byKey[key])))
		}
	}
	return why
}

// matchAttempt finds the recorded attempt of the delivery during which req
// arrived at its target: the latest attempt that began before it and had
// not ended, first without slack, then with MatchSlack.
func (c *checker) matchAttempt(req Request) (Attempt, bool) {
	id, step := splitKey(req.Key)
	m := c.msgs[id]
	if m == nil {
		return Attempt{}, false
	}
	for _, slack := range []time.Duration{0, c.opt.MatchSlack} {
		var best Attempt
		found := false
		for _, d := range m.Deliveries {
			if d.Step != step {
				continue
			}
			for _, a := range d.Attempts {
				from := a.Start.Add(-slack)
				to := a.Start.Add(a.Duration + time.Millisecond + slack)
				if req.Start.Before(from) || req.Start.After(to) {
					continue
				}
				if !found || a.Start.After(best.Start) {
					best, found = a, true
				}
			}
		}
		if found {
			return best, true
		}
	}
	return Attempt{}, false
}

// windowed reports whether a fault struck sender between from and to.
func (c *checker) windowed(s Sender, from, to time.Time) bool {
	for _, f := range c.h.Faults {
		if f.hits(s, from, to) {
			return true
		}
	}
	return false
}

// checkDuplicates classifies the requests that came after a 2xx of their
// key. Each is judged against the latest 2xx before it: if that 2xx was
// recorded, nothing may send the key again; if its sender was struck by a
// fault between that request and this one, it is a crash window; if the
// store recorded its attempt as a failure, the answer was lost on the way.
// The window opens one lease before that 2xx (when its claim was made)
// and closes when the duplicate began.
// A request the client had already abandoned when it arrived (a copy the
// network held back) did nothing and is counted as stale.
func (c *checker) checkDuplicates(key string) {
	reqs := c.byKey[key]
	worst := 0 // 1 crash window, 2 lost answer, 3 outside
	var prev, outside Request
	var outsideAtt Attempt
	for i, r := range reqs {
		var last Request
		found := false
		for _, e := range reqs[:i] {
			if e.Outcome.Effect() && !e.End.After(r.Start) {
				last, found = e, true
			}
		}
		if !found {
			continue // no 2xx before it ended (overlaps are checkOverlaps')
		}
		if r.Outcome == Abandoned {
			c.rep.Stale++
			continue
		}
		att, recorded := c.matchAttempt(last)
		class := 3
		switch {
		case recorded && att.Outcome == "success":
			// The 2xx was recorded: nothing may send the key again.
		case c.windowed(last.Sender, last.Start.Add(-c.opt.Lease), r.Start):
			class = 1
		case recorded:
			class = 2
		}
		if class == 3 && worst < 3 {
			prev, outside, outsideAtt = last, r, att
			if !(recorded && att.Outcome == "success") {
				outsideAtt = Attempt{}
			}
		}
		worst = max(worst, class)
	}
	switch worst {
	case 1:
		c.rep.DuplicatesInCrashWindow++
	case 2:
		c.rep.DuplicatesLostAnswer++
	case 3:
		c.rep.DuplicatesOutside++
		how := "no recorded attempt and no fault of its sender explains it"
		if outsideAtt.N > 0 {
			how = fmt.Sprintf("that 2xx was recorded as attempt %d", outsideAtt.N)
			if a, ok := c.matchAttempt(outside); ok && a.N == outsideAtt.N {
				how += ", and both fall inside it: the client sent it again on its own"
			}
		}
		c.violate(DuplicateOutside, key, "2xx at %s from %s (%s), sent again at %s from %s (%s): %s",
			stamp(prev.Start), sender(prev.Sender), prev.Outcome, stamp(outside.Start), sender(outside.Sender), outside.Outcome, how)
	}
}

// checkOverlaps: no two requests of one key in flight at the target at
// once. When one of the two had been abandoned by its client and lived on
// at most AbandonSlack once both were there, it is the target noticing the
// closed connection late, or a copy the network held back: counted, not
// reported.
func (c *checker) checkOverlaps(key string) {
	reqs := c.byKey[key]
	for i := range reqs {
		for j := i + 1; j < len(reqs) && reqs[j].Start.Before(reqs[i].End); j++ {
			a, b := reqs[i], reqs[j]
			overlap := minTime(a.End, b.End).Sub(b.Start)
			// The abandoned one of the two may live on at most AbandonSlack
			// once both are at the target.
			if (a.Outcome == Abandoned && a.End.Sub(b.Start) <= c.opt.AbandonSlack) ||
				(b.Outcome == Abandoned && b.End.Sub(b.Start) <= c.opt.AbandonSlack) {
				c.rep.ConcurrentExcused++
				continue
			}
			c.rep.ConcurrentDoubles++
			c.violate(Concurrent, key, "%s from %s [%s, %s] (%s) overlaps %s from %s [%s, %s] (%s) by %v",
				a.Target, sender(a.Sender), stamp(a.Start), stamp(a.End), a.Outcome,
				b.Target, sender(b.Sender), stamp(b.Start), stamp(b.End), b.Outcome, overlap)
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// checkCounted counts the requests on the wire that no recorded attempt
// counts: more than one request within one attempt (a client that resent
// on its own), or none at all while the sender lived on unhurt.
func (c *checker) checkCounted(key string) {
	perAttempt := map[int]int{}
	for _, r := range c.byKey[key] {
		if a, ok := c.matchAttempt(r); ok {
			perAttempt[a.N]++
			if perAttempt[a.N] > 1 {
				c.rep.Uncounted++
			}
			continue
		}
		if !c.windowed(r.Sender, r.Start, r.End.Add(10*time.Second)) {
			c.rep.Uncounted++
		}
	}
}

// checkSaga checks one saga message's compensations against its forward
// steps, as the targets saw them.
func (c *checker) checkSaga(m *Message, r *Route) {
	c.rep.SagaMessages++
	var began time.Time // the first compensation request
	firstComp := map[string]Request{}
	for _, s := range r.Steps {
		if reqs := c.byKey[m.ID+"."+s.Name+CompensationSuffix]; len(reqs) > 0 {
			firstComp[s.Name] = reqs[0]
			if began.IsZero() || reqs[0].Start.Before(began) {
				began = reqs[0].Start
			}
		}
	}
	deliveries := map[string]*Delivery{}
	for i := range m.Deliveries {
		deliveries[m.Deliveries[i].Step] = &m.Deliveries[i]
	}
	if !began.IsZero() {
		c.rep.SagaCompensated++
		for _, s := range r.Steps {
			for _, fr := range c.byKey[m.ID+"."+s.Name] {
				if fr.Start.After(began) && fr.Outcome != Abandoned {
					c.violate(SagaForwardAfter, m.ID+"."+s.Name, "sent at %s from %s (%s), after compensation began at %s",
						stamp(fr.Start), sender(fr.Sender), fr.Outcome, stamp(began))
					break
				}
			}
		}
	}
	for _, s := range r.Steps {
		cr, ok := firstComp[s.Name]
		if !ok {
			continue
		}
		// It ran if its target received it before its compensation began.
		ran := false
		for _, fr := range c.byKey[m.ID+"."+s.Name] {
			if fr.Start.Before(cr.Start) {
				ran = true
				break
			}
		}
		if !ran {
			if d := deliveries[s.Name]; d != nil && unanswered(d) {
				c.rep.CompensatedUnknown++
			} else {
				c.violate(SagaNeverRan, m.ID+"."+s.Name+CompensationSuffix, "compensation sent at %s, but the target never received step %s (and no attempt of it went unanswered)",
					stamp(cr.Start), s.Name)
			}
		}
		// Reverse dependency order: every step downstream of this one has
		// its compensation final before this one starts.
		for _, down := range downstream(r, s.Name) {
			dreqs := c.byKey[m.ID+"."+down+CompensationSuffix]
			if len(dreqs) == 0 {
				continue
			}
			if dreqs[0].Start.After(cr.Start) {
				c.violate(SagaOrder, m.ID, "%s%s began at %s, before %s%s (downstream) began at %s",
					s.Name, CompensationSuffix, stamp(cr.Start), down, CompensationSuffix, stamp(dreqs[0].Start))
				continue
			}
			if d := deliveries[down+CompensationSuffix]; d != nil && d.Replays > 0 {
				continue // replayed later by hand: its later requests may follow
			}
			last := dreqs[len(dreqs)-1]
			end := last.End
			if last.Outcome == Abandoned {
				end = end.Add(-c.opt.AbandonSlack)
			}
			if end.After(cr.Start) {
				c.violate(SagaOrder, m.ID, "%s%s began at %s while %s%s (downstream) was still being sent until %s",
					s.Name, CompensationSuffix, stamp(cr.Start), down, CompensationSuffix, stamp(last.End))
			}
		}
	}
	// A saga that did not succeed must have undone every step that had
	// its effect, whatever tandem believed of that step.
	if m.Status == "succeeded" || !settled(m, r) {
		return
	}
	for _, s := range r.Steps {
		if !s.Compensate {
			continue
		}
		done, ok := c.effect(m.ID + "." + s.Name)
		if !ok {
			continue
		}
		if _, undone := c.effect(m.ID + "." + s.Name + CompensationSuffix); !undone {
			c.violate(SagaNotUndone, m.ID+"."+s.Name, "its target did the work at %s (%s from %s), the saga did not succeed (status %s), and %s%s never got a 2xx (%d requests)",
				stamp(done.Start), done.Outcome, sender(done.Sender), m.Status, s.Name, CompensationSuffix, len(c.byKey[m.ID+"."+s.Name+CompensationSuffix]))
		}
	}
}

// unanswered reports whether some attempt of d got no answer (a timeout or
// a reset): it may have reached the target.
func unanswered(d *Delivery) bool {
	for _, a := range d.Attempts {
		if a.HTTPStatus == 0 && a.Outcome != "success" {
			return true
		}
	}
	return false
}

// downstream lists the steps that wait on step, directly or not.
func downstream(r *Route, step string) []string {
	var out []string
	seen := map[string]bool{step: true}
	frontier := []string{step}
	for len(frontier) > 0 {
		cur := frontier[0]
		frontier = frontier[1:]
		for _, s := range r.Steps {
			if !seen[s.Name] && slices.Contains(s.After, cur) {
				seen[s.Name] = true
				out = append(out, s.Name)
				frontier = append(frontier, s.Name)
			}
		}
	}
	return out
}

func stamp(t time.Time) string { return t.UTC().Format("15:04:05.000000") }

func sender(s Sender) string { return fmt.Sprintf("replica %d gen %d", s.Replica, s.Gen) }
