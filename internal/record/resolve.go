package record

import (
	"strings"
	"time"
)

// CompensationSuffix ends the step name of a saga's compensation
// delivery: the compensation of step "charge" is "charge.compensate".
// Step names cannot hold ".", so the name never clashes with a step.
const CompensationSuffix = ".compensate"

// CompensationStep returns the step name of step's compensation delivery.
func CompensationStep(step string) string { return step + CompensationSuffix }

// Compensates returns the step that a compensation delivery undoes, and
// whether step names a compensation at all.
func Compensates(step string) (string, bool) {
	return strings.CutSuffix(step, CompensationSuffix)
}

// OnCompletePrefix begins the step name of a route's on_complete
// deliveries ("on_complete.target", "on_complete.publish",
// "on_complete.callback"). Step names cannot hold ".", so the name never
// clashes with a step. See oncomplete.go.
const OnCompletePrefix = "on_complete."

// OnCompleteStep returns the step name of the on_complete delivery kind.
func OnCompleteStep(kind string) string { return OnCompletePrefix + kind }

// IsOnComplete reports whether step names an on_complete delivery: one
// that sends the message's summary once every other delivery is final,
// and never counts towards the message's status.
func IsOnComplete(step string) bool { return strings.HasPrefix(step, OnCompletePrefix) }

// DeriveMessageStatus computes a message's status from its deliveries. It is
// the one definition both stores use, so a status never drifts between them.
//
//   - any delivery not final → running (accepted while nothing has started);
//   - all final, in a saga: a compensation that is dead → failed (a person
//     must undo that step); else a compensation that succeeded (or a step
//     marked compensated) → compensated;
//   - otherwise, over the forward steps that are required (all forward
//     steps when none is): all succeeded → succeeded, none → failed, some
//     → partially_succeeded. Compensations never count here.
//
// On_complete deliveries never count: the status is the outcome of the
// steps, and the summary an on_complete delivery sends reports it.
func DeriveMessageStatus(ds []Delivery) MessageStatus {
	if len(ds) == 0 {
		return MessageSucceeded
	}
	started, open := false, false
	compensated, compDead := false, false
	anyRequired := false
	for _, d := range ds {
		if IsOnComplete(d.Step) {
			continue
		}
		if !d.Status.Final() {
			open = true
		}
		if d.Attempts > 0 || d.Replays > 0 || d.Status != DeliveryScheduled && d.Status != DeliveryWaiting {
			started = true
		}
		if _, isComp := Compensates(d.Step); isComp {
			switch d.Status {
			case DeliverySucceeded:
				compensated = true
			case DeliveryDead:
				compDead = true
			}
			continue
		}
		if d.Status == DeliveryCompensated || d.Status == DeliveryCompensating {
			compensated = true
		}
		if d.Required {
			anyRequired = true
		}
	}
	switch {
	case open && !started:
		return MessageAccepted
	case open:
		return MessageRunning
	case compDead:
		return MessageFailed
	case compensated:
		return MessageCompensated
	}
	ok, bad := 0, 0
	for _, d := range ds {
		if _, isComp := Compensates(d.Step); isComp || IsOnComplete(d.Step) || anyRequired && !d.Required {
			continue
		}
		if d.Status == DeliverySucceeded {
			ok++
		} else {
			bad++
		}
	}
	switch {
	case bad == 0:
		return MessageSucceeded
	case ok == 0:
		return MessageFailed
	default:
		return MessagePartiallySucceeded
	}
}

// Change is a new state for one delivery, decided by Resolve.
type Change struct {
	DeliveryID    string
	Status        DeliveryStatus
	NextAttemptAt time.Time
	LastError     string
	// Unknown, when true, marks the delivery's outcome unknown (it may
	// have reached its target); a change never clears the mark.
	Unknown bool
}

// Resolve decides what changes in one message now that a delivery
// changed. ds is not modified; it returns at most one change per
// delivery, in the order of ds.
//
// Forward steps: a waiting step whose after steps all succeeded becomes
// scheduled (due now); one whose after step failed for good is skipped,
// and the skip propagates down the whole graph.
//
// Sagas (a message with compensation deliveries, "<step>.compensate"):
//
//   - while any forward step is not final, compensations wait;
//   - once all are final and no required forward step is dead or skipped,
//     every waiting compensation is cancelled;
//   - otherwise the compensation of a step that did not succeed is
//     cancelled (nothing to undo), and that of a step that succeeded
//     becomes scheduled once the compensations of every step downstream
//     of it are final: reverse dependency order. A dead compensation does
//     not stop the others; the message ends failed and the dead letter
//     waits for a person.
//   - the forward step follows its compensation: compensating while it is
//     scheduled or running, compensated once it succeeded, and back to
//     succeeded (with a last error pointing at it) when it is dead.
//
// On_complete deliveries ("on_complete.*") wait until every other
// delivery of the message is final, then become scheduled (the
// resolve-schedule event: what they run after is done).
func Resolve(ds []Delivery, now time.Time) []Change {
	r := resolver{
		st:     make(map[string]DeliveryStatus, len(ds)),
		reason: map[string]string{},
		next:   map[string]time.Time{},
	}
	for _, d := range ds {
		r.st[d.Step] = d.Status
	}
	r.forward(ds, now)
	r.saga(ds, now)
	r.onComplete(ds, now)
	var out []Change
	for _, d := range ds {
		if s := r.st[d.Step]; s != d.Status {
			out = append(out, Change{DeliveryID: d.ID, Status: s, NextAttemptAt: r.next[d.Step], LastError: r.reason[d.Step]})
		}
	}
	return out
}

// resolver holds the statuses Resolve is deciding, by step.
type resolver struct {
	st     map[string]DeliveryStatus
	reason map[string]string
	next   map[string]time.Time
}

func (r *resolver) set(step string, s DeliveryStatus, reason string, next time.Time) {
	r.st[step], r.reason[step], r.next[step] = s, reason, next
}

// forward schedules or skips waiting forward steps until nothing changes.
func (r *resolver) forward(ds []Delivery, now time.Time) {
	for changed := true; changed; {
		changed = false
		for _, d := range ds {
			if r.st[d.Step] != DeliveryWaiting {
				continue
			}
			if _, isComp := Compensates(d.Step); isComp || IsOnComplete(d.Step) {
				continue
			}
			ready := true
			failed := ""
			for _, a := range d.After {
				switch r.st[a] {
				case DeliverySucceeded:
				case DeliveryDead, DeliverySkipped, DeliveryCancelled, DeliveryCompensated, DeliveryCompensating:
					failed = a
				default:
					ready = false
				}
				if failed != "" {
					break
				}
			}
			switch {
			case failed != "":
				r.set(d.Step, DeliverySkipped, "step "+failed+" did not succeed", time.Time{})
				changed = true
			case ready:
				r.set(d.Step, DeliveryScheduled, "", now)
				changed = true
			}
		}
	}
}

// saga moves compensations and marks the steps they undo.
func (r *resolver) saga(ds []Delivery, now time.Time) {
	comp := map[string]string{} // forward step → its compensation
	var comps []string          // compensations, in ds order
	for _, d := range ds {
		if base, ok := Compensates(d.Step); ok {
			comp[base] = d.Step
			comps = append(comps, d.Step)
		}
	}
	if len(comps) == 0 {
		return
	}
	settled, triggered := true, false
	dead, skipped := "", ""
	maybe := map[string]bool{} // dead steps whose last attempt may have reached the target
	for _, d := range ds {
		if _, isComp := Compensates(d.Step); isComp || IsOnComplete(d.Step) {
			continue
		}
		if d.OutcomeUnknown && !d.NoCompensateUnknown {
			maybe[d.Step] = true
		}
		switch s := r.st[d.Step]; {
		case s == DeliveryCompensating || s == DeliveryCompensated:
			triggered = true
		case !s.Final():
			settled = false
		case d.Required && s == DeliveryDead && dead == "":
			dead = d.Step
		case d.Required && (s == DeliverySkipped || s == DeliveryCancelled) && skipped == "":
			skipped = d.Step
		}
	}
	failed := dead
	if failed == "" {
		failed = skipped
	}
	if settled {
		switch {
		case failed == "" && !triggered:
			for _, c := range comps {
				if r.st[c] == DeliveryWaiting {
					r.set(c, DeliveryCancelled, "not needed: no required step failed", time.Time{})
				}
			}
		default:
			down := downstream(ds)
			for changed := true; changed; {
				changed = false
				for _, c := range comps {
					if r.st[c] != DeliveryWaiting {
						continue
					}
					base, _ := Compensates(c)
					switch r.st[base] {
					case DeliverySucceeded, DeliveryCompensating, DeliveryCompensated:
					case DeliveryDead:
						if maybe[base] {
							break // it may have happened: undo it too
						}
						r.set(c, DeliveryCancelled, "step "+base+" did not succeed: nothing to undo", time.Time{})
						changed = true
						continue
					default:
						r.set(c, DeliveryCancelled, "step "+base+" did not succeed: nothing to undo", time.Time{})
						changed = true
						continue
					}
					ready := true
					for _, s := range down[base] {
						if dc, ok := comp[s]; ok && !r.st[dc].Final() {
							ready = false
							break
						}
					}
					if ready {
						r.set(c, DeliveryScheduled, "", now)
						changed = true
					}
				}
			}
		}
	}
	why := "a required step failed"
	if failed != "" {
		why = "step " + failed + " failed"
	}
	for _, c := range comps {
		base, _ := Compensates(c)
		bs, ok := r.st[base]
		if !ok {
			continue
		}
		switch r.st[c] {
		case DeliveryScheduled, DeliveryRunning:
			if bs == DeliverySucceeded || bs == DeliveryCompensated {
				r.set(base, DeliveryCompensating, "compensating: "+why, time.Time{})
			}
		case DeliverySucceeded:
			if bs == DeliverySucceeded || bs == DeliveryCompensating {
				r.set(base, DeliveryCompensated, "compensated by "+c+": "+why, time.Time{})
			}
		case DeliveryDead:
			if bs == DeliveryCompensating {
				r.set(base, DeliverySucceeded, "its compensation "+c+" failed: the step's effect stands until a person undoes it", time.Time{})
			}
		default:
			if bs == DeliveryCompensating {
				r.set(base, DeliverySucceeded, "", time.Time{})
			}
		}
	}
}

// onComplete schedules the waiting on_complete deliveries once every
// other delivery is final (as r decided them).
func (r *resolver) onComplete(ds []Delivery, now time.Time) {
	var waiting []string
	for _, d := range ds {
		if IsOnComplete(d.Step) {
			if r.st[d.Step] == DeliveryWaiting {
				waiting = append(waiting, d.Step)
			}
			continue
		}
		if !r.st[d.Step].Final() {
			return
		}
	}
	for _, s := range waiting {
		r.set(s, DeliveryScheduled, "", now)
	}
}

// downstream maps each forward step to every forward step that waits for
// it, directly or not.
func downstream(ds []Delivery) map[string][]string {
	after := map[string][]string{}
	for _, d := range ds {
		if _, isComp := Compensates(d.Step); !isComp && !IsOnComplete(d.Step) {
			after[d.Step] = d.After
		}
	}
	out := map[string][]string{}
	for s := range after {
		seen := map[string]bool{}
		var visit func(string)
		visit = func(n string) {
			for _, a := range after[n] {
				if !seen[a] {
					seen[a] = true
					visit(a)
				}
			}
		}
		visit(s)
		for up := range seen {
			if up != s {
				out[up] = append(out[up], s)
			}
		}
	}
	return out
}

// Unskip returns the changes that send the skipped dependants of step (and
// theirs, down the graph) back to waiting, for when step is replayed. In a
// saga, replaying a forward step reopens the saga's outcome: cancelled
// compensations wait again (Resolve decides them anew once every forward
// step is final). Compensations that ran are never run again by it.
func Unskip(ds []Delivery, step string) []Change {
	back := map[string]bool{step: true}
	var out []Change
	for changed := true; changed; {
		changed = false
		for _, d := range ds {
			if d.Status != DeliverySkipped || back[d.Step] {
				continue
			}
			for _, a := range d.After {
				if back[a] {
					back[d.Step] = true
					out = append(out, Change{DeliveryID: d.ID, Status: DeliveryWaiting})
					changed = true
					break
				}
			}
		}
	}
	if _, isComp := Compensates(step); isComp {
		return out
	}
	for _, d := range ds {
		if _, isComp := Compensates(d.Step); isComp && d.Status == DeliveryCancelled {
			out = append(out, Change{DeliveryID: d.ID, Status: DeliveryWaiting})
		}
	}
	return out
}

// GraphOrder returns ds in the order a person reads a message: forward
// steps so that each comes after the steps it waits for (otherwise in the
// order of ds), then compensations in the order they run (the deepest
// step's first), then on_complete deliveries. ds is not modified.
func GraphOrder(ds []Delivery) []Delivery {
	pos := map[string]int{} // forward step → position in the order
	var fwd, comps, done []Delivery
	for _, d := range ds {
		if _, isComp := Compensates(d.Step); isComp {
			comps = append(comps, d)
		} else if IsOnComplete(d.Step) {
			done = append(done, d)
		} else {
			fwd = append(fwd, d)
		}
	}
	out := make([]Delivery, 0, len(ds))
	placed := make([]bool, len(fwd))
	for len(out) < len(fwd) {
		progress := false
		for i, d := range fwd {
			if placed[i] {
				continue
			}
			ready := true
			for _, a := range d.After {
				if _, ok := pos[a]; !ok && hasStep(fwd, a) {
					ready = false
					break
				}
			}
			if ready {
				placed[i] = true
				pos[d.Step] = len(out)
				out = append(out, d)
				progress = true
				break // restart, so earlier steps in ds go first
			}
		}
		if !progress { // a cycle: keep the rest as they are
			for i, d := range fwd {
				if !placed[i] {
					pos[d.Step] = len(out)
					out = append(out, d)
				}
			}
		}
	}
	// Compensations: by their step's position, last first.
	for i := 1; i < len(comps); i++ {
		for j := i; j > 0 && compPos(pos, comps[j]) > compPos(pos, comps[j-1]); j-- {
			comps[j], comps[j-1] = comps[j-1], comps[j]
		}
	}
	return append(append(out, comps...), done...)
}

func compPos(pos map[string]int, d Delivery) int {
	base, _ := Compensates(d.Step)
	if p, ok := pos[base]; ok {
		return p
	}
	return -1
}

func hasStep(ds []Delivery, step string) bool {
	for _, d := range ds {
		if d.Step == step {
			return true
		}
	}
	return false
}
