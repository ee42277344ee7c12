package record

import "time"

// DeriveMessageStatus computes a message's status from its deliveries. It is
// the one definition both stores use, so a status never drifts between them.
//
//   - any delivery not final → running (accepted while nothing has started);
//   - all final: compensated if any step was compensated; else, over the
//     required steps (all steps when none is required): all succeeded →
//     succeeded, none → failed, some → partially_succeeded.
func DeriveMessageStatus(ds []Delivery) MessageStatus {
	if len(ds) == 0 {
		return MessageSucceeded
	}
	started := false
	open := false
	compensated := false
	for _, d := range ds {
		if !d.Status.Final() {
			open = true
		}
		if d.Attempts > 0 || d.Status != DeliveryScheduled && d.Status != DeliveryWaiting {
			started = true
		}
		if d.Status == DeliveryCompensated || d.Status == DeliveryCompensating {
			compensated = true
		}
	}
	if open {
		if !started {
			return MessageAccepted
		}
		return MessageRunning
	}
	if compensated {
		return MessageCompensated
	}
	anyRequired := false
	for _, d := range ds {
		if d.Required {
			anyRequired = true
			break
		}
	}
	ok, bad := 0, 0
	for _, d := range ds {
		if anyRequired && !d.Required {
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
}

// Resolve decides which waiting deliveries of one message can now run and
// which must be skipped because a step they wait for failed for good. It
// repeats until nothing changes, so a skip propagates down the whole graph.
// ds is not modified.
func Resolve(ds []Delivery, now time.Time) []Change {
	status := make(map[string]DeliveryStatus, len(ds))
	for _, d := range ds {
		status[d.Step] = d.Status
	}
	var out []Change
	for changed := true; changed; {
		changed = false
		for _, d := range ds {
			if status[d.Step] != DeliveryWaiting {
				continue
			}
			ready := true
			failed := ""
			for _, a := range d.After {
				switch s := status[a]; s {
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
				status[d.Step] = DeliverySkipped
				out = append(out, Change{DeliveryID: d.ID, Status: DeliverySkipped, LastError: "step " + failed + " did not succeed"})
				changed = true
			case ready:
				status[d.Step] = DeliveryScheduled
				out = append(out, Change{DeliveryID: d.ID, Status: DeliveryScheduled, NextAttemptAt: now})
				changed = true
			}
		}
	}
	return out
}

// Unskip returns the changes that send the skipped dependants of step (and
// theirs, down the graph) back to waiting, for when step is replayed.
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
	return out
}
