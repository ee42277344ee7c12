package record

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// The families the exploration runs on: plain graphs and sagas, each
// small enough to visit every reachable combination of statuses.
func explorationFamilies() map[string][]Delivery {
	fwd := func(step string, required bool, after ...string) Delivery {
		return Delivery{ID: "id-" + step, Step: step, After: after, Required: required}
	}
	comp := func(step string) Delivery {
		c := CompensationStep(step)
		return Delivery{ID: "id-" + c, Step: c}
	}
	summary := Delivery{ID: "id-oc", Step: OnCompleteStep("target")}
	return map[string][]Delivery{
		"chain":         {fwd("a", true), fwd("b", true, "a")},
		"chain-summary": {fwd("a", true), fwd("b", true, "a"), summary},
		"saga-summary":  {fwd("a", true), fwd("b", true, "a"), comp("a"), comp("b"), summary},
		"chain3":        {fwd("a", true), fwd("b", true, "a"), fwd("c", true, "b")},
		"diamond":       {fwd("a", true), fwd("b", false), fwd("c", true, "a", "b")},
		"saga":          {fwd("a", true), fwd("b", true, "a"), comp("a"), comp("b")},
		"saga3": {fwd("a", true), fwd("b", true, "a"), fwd("c", true, "b"),
			comp("a"), comp("b"), comp("c")},
		"saga-parallel": {fwd("a", true), fwd("b", false), fwd("c", true, "a", "b"),
			comp("a"), comp("b"), comp("c")},
	}
}

// observed collects the transitions the exploration saw.
type observed map[DeliveryTransition]string // → a family and state where it happened

func (o observed) add(t DeliveryTransition, where string) {
	if _, ok := o[t]; !ok {
		o[t] = where
	}
}

// settleEvent names the event of a change that Unskip or Resolve made.
func settleEvent(from, to DeliveryStatus, isComp bool) Event {
	switch {
	case from == DeliveryWaiting && to == DeliveryScheduled && isComp:
		return EventCompensationSchedule
	case from == DeliveryWaiting && to == DeliveryScheduled:
		return EventResolveSchedule
	case from == DeliveryWaiting && to == DeliverySkipped:
		return EventResolveSkip
	case from == DeliveryWaiting && to == DeliveryCancelled:
		return EventCompensationCancel
	case from == DeliverySucceeded && to == DeliveryCompensating:
		return EventCompensate
	case from == DeliveryCompensating && to == DeliveryCompensated:
		return EventCompensationSuccess
	case from == DeliveryCompensating && to == DeliverySucceeded:
		return EventCompensationDead
	case from == DeliverySkipped && to == DeliveryWaiting:
		return EventUnskip
	case from == DeliveryCancelled && to == DeliveryWaiting:
		return EventReopen
	}
	return Event("unnamed change by Resolve or Unskip")
}

// settle does what the stores do in the transaction of a complete or a
// replay: Unskip for each replayed step, then Resolve, each delivery
// written once with its last change. It returns the new statuses and
// records the changes.
func settle(ds []Delivery, unskip []string, o observed, where string) []Delivery {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	was := make([]DeliveryStatus, len(ds))
	for i := range ds {
		was[i] = ds[i].Status
	}
	apply := func(cs []Change) {
		for _, c := range cs {
			for i := range ds {
				if ds[i].ID == c.DeliveryID {
					ds[i].Status = c.Status
				}
			}
		}
	}
	for _, step := range unskip {
		if !IsOnComplete(step) { // as Family.Replay: a summary reopens nothing
			apply(Unskip(ds, step))
		}
	}
	apply(Resolve(ds, now))
	for i := range ds {
		if ds[i].Status != was[i] {
			_, isComp := Compensates(ds[i].Step)
			o.add(DeliveryTransition{was[i], ds[i].Status, settleEvent(was[i], ds[i].Status, isComp)}, where)
		}
	}
	return ds
}

// othersFinal reports whether every delivery but ds[i] is final: a dead
// summary may be replayed only then.
func othersFinal(ds []Delivery, i int) bool {
	for j, d := range ds {
		if j != i && !IsOnComplete(d.Step) && !d.Status.Final() {
			return false
		}
	}
	return true
}

// compensationBegan reports whether any compensation of the message left
// waiting for good: forward replays are refused from then on (DESIGN,
// "Guarantees": 409 for forward replays once compensation began).
func compensationBegan(ds []Delivery) bool {
	for _, d := range ds {
		if _, isComp := Compensates(d.Step); isComp && d.Status != DeliveryWaiting && d.Status != DeliveryCancelled {
			return true
		}
	}
	return false
}

// explore visits every status combination of the family that the stores'
// writes can reach from the insert, and records each transition it takes.
// The writes are those of internal/store (sqlite/statements.go and
// postgres): a claim takes scheduled, or running with a lease that ran
// out; complete and postpone need running (and the claim's token); a
// replay takes dead deliveries, one or several at once.
func explore(t *testing.T, name string, family []Delivery, o observed) int {
	t.Helper()
	start := slices.Clone(family)
	for i := range start {
		_, isComp := Compensates(start[i].Step)
		start[i].Status = DeliveryScheduled
		if len(start[i].After) > 0 || isComp || IsOnComplete(start[i].Step) {
			start[i].Status = DeliveryWaiting
		}
		o.add(DeliveryTransition{"", start[i].Status, EventAccept}, name)
	}
	key := func(ds []Delivery) string {
		var b strings.Builder
		for _, d := range ds {
			b.WriteString(string(d.Status))
			b.WriteByte(' ')
		}
		return b.String()
	}
	seen := map[string]bool{key(start): true}
	queue := [][]Delivery{start}
	push := func(ds []Delivery) {
		if k := key(ds); !seen[k] {
			seen[k] = true
			queue = append(queue, ds)
		}
	}
	for len(queue) > 0 {
		ds := queue[0]
		queue = queue[1:]
		where := name + ": " + key(ds)
		var dead []int
		for i, d := range ds {
			move := func(to DeliveryStatus, ev Event, settles bool) {
				next := slices.Clone(ds)
				next[i].Status = to
				o.add(DeliveryTransition{d.Status, to, ev}, where)
				if settles {
					next = settle(next, nil, o, where)
				}
				push(next)
			}
			switch d.Status {
			case DeliveryScheduled:
				move(DeliveryRunning, EventClaim, false)
			case DeliveryRunning:
				move(DeliveryRunning, EventLeaseExpiryReclaim, false)
				move(DeliveryScheduled, EventPostpone, false)
				move(DeliverySucceeded, EventCompleteSuccess, true)
				move(DeliveryScheduled, EventCompleteRetry, true)
				move(DeliveryDead, EventCompleteDead, true)
			case DeliveryDead:
				_, isComp := Compensates(d.Step)
				switch {
				case IsOnComplete(d.Step):
					if othersFinal(ds, i) {
						// Replayed on its own: with a step in the same
						// replay it is refused (Family.Replay).
						next := slices.Clone(ds)
						next[i].Status = DeliveryScheduled
						o.add(DeliveryTransition{DeliveryDead, DeliveryScheduled, EventReplay}, where)
						push(settle(next, []string{next[i].Step}, o, where))
					}
				case isComp || !compensationBegan(ds):
					dead = append(dead, i)
				}
			}
		}
		// Replays: every non-empty set of the dead deliveries that may be
		// replayed, in one transaction (a bulk replay takes several).
		for set := 1; set < 1<<len(dead); set++ {
			next := slices.Clone(ds)
			var steps []string
			for j, i := range dead {
				if set&(1<<j) != 0 {
					next[i].Status = DeliveryScheduled
					o.add(DeliveryTransition{DeliveryDead, DeliveryScheduled, EventReplay}, where)
					steps = append(steps, next[i].Step)
				}
			}
			push(settle(next, steps, o, where))
		}
	}
	return len(seen)
}

// TestDeliveryTransitionsAreWhatTheCodeDoes explores every reachable state
// of small plain and saga messages under the stores' writes, Resolve and
// Unskip, and checks that the transitions taken are exactly
// DeliveryTransitions: none missing from the table, none in it that the
// code never makes.
func TestDeliveryTransitionsAreWhatTheCodeDoes(t *testing.T) {
	t.Parallel()
	o := observed{}
	fams := explorationFamilies()
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		states := explore(t, n, fams[n], o)
		t.Logf("%s: %d reachable states", n, states)
	}
	table := map[DeliveryTransition]bool{}
	for _, tr := range DeliveryTransitions {
		if table[tr] {
			t.Errorf("DeliveryTransitions lists %v twice", tr)
		}
		table[tr] = true
	}
	for tr, where := range o {
		if !table[tr] {
			t.Errorf("the code makes %q -> %q (%s), which DeliveryTransitions lacks; seen at %s", tr.From, tr.To, tr.Event, where)
		}
	}
	for _, tr := range DeliveryTransitions {
		if _, ok := o[tr]; !ok {
			t.Errorf("DeliveryTransitions lists %q -> %q (%s), which the code never makes", tr.From, tr.To, tr.Event)
		}
	}
}

func TestCanMove(t *testing.T) {
	t.Parallel()
	for _, tr := range DeliveryTransitions {
		if !CanMove(tr.From, tr.To) {
			t.Errorf("CanMove(%q, %q) = false for a listed transition", tr.From, tr.To)
		}
		if tr.From != "" && !tr.From.Valid() || !tr.To.Valid() {
			t.Errorf("transition %v names an unknown status", tr)
		}
	}
	for _, tt := range []struct{ from, to DeliveryStatus }{
		{DeliverySucceeded, DeliveryRunning},    // a recorded success is final
		{DeliverySucceeded, DeliveryScheduled},  // only dead deliveries are replayed
		{DeliveryCompensated, DeliveryWaiting},  // a compensation that ran is not reopened
		{DeliveryWaiting, DeliveryRunning},      // claims take scheduled deliveries
		{DeliverySkipped, DeliveryScheduled},    // unskip goes through waiting
		{"", DeliveryRunning},                   // a delivery is stored waiting or scheduled
		{DeliveryCancelled, DeliveryScheduled},  // reopen goes through waiting
		{DeliveryCompensating, DeliveryWaiting}, // nothing undoes a compensation's start
	} {
		if CanMove(tt.from, tt.to) {
			t.Errorf("CanMove(%q, %q) = true", tt.from, tt.to)
		}
	}
}
