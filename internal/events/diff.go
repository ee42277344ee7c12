package events

import (
	"sync"

	"github.com/tandem-run/tandem/internal/record"
)

// snapshots remember the last seen state of recent messages, to tell
// what is new when one is read back.
type snapshots struct {
	mu    sync.Mutex
	max   int
	m     map[string]*snapshot
	order []string // insertion order, for forgetting the oldest
}

type snapshot struct {
	status record.MessageStatus
	dels   map[string]seenDelivery
}

type seenDelivery struct {
	status   record.DeliveryStatus
	attempts int // the highest attempt number seen
	replays  int
}

func newSnapshots(n int) *snapshots {
	return &snapshots{max: n, m: map[string]*snapshot{}}
}

func (s *snapshots) forget(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// diff returns the events that take the last seen state of md's message
// to md, and remembers md: a new message first, then per delivery (in
// dependency order) its new attempts and its new state, then a changed
// message status.
func (s *snapshots) diff(md *record.MessageDetail) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := md.Message
	brief := record.Message{
		ID: m.ID, Route: m.Route, Status: m.Status, IdempotencyKey: m.IdempotencyKey,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}
	old := s.m[m.ID]
	var out []Event
	if old == nil {
		out = append(out, Event{Kind: KindMessage, Message: brief})
	}
	next := &snapshot{status: m.Status, dels: make(map[string]seenDelivery, len(md.Deliveries))}
	ref := record.Message{ID: m.ID, Route: m.Route}
	for _, d := range record.GraphOrder(md.Deliveries) {
		var was seenDelivery
		known := false
		if old != nil {
			was, known = old.dels[d.ID]
		}
		d.ResponseBody, d.ResponseHeaders, d.Message = nil, nil, nil
		attempts := md.Attempts[d.ID]
		now := seenDelivery{status: d.Status, replays: d.Replays, attempts: was.attempts}
		for _, a := range attempts {
			if a.N > was.attempts {
				out = append(out, Event{Kind: KindAttempt, Message: ref, Delivery: d, Attempt: a})
			}
			now.attempts = max(now.attempts, a.N)
		}
		if !known || now != was {
			out = append(out, Event{Kind: KindDelivery, Message: ref, Delivery: d, Attempts: attempts})
		}
		next.dels[d.ID] = now
	}
	if old != nil && old.status != m.Status {
		out = append(out, Event{Kind: KindMessage, Message: brief})
	}
	if old == nil {
		s.order = append(s.order, m.ID)
		for len(s.m) >= s.max && len(s.order) > 0 {
			delete(s.m, s.order[0])
			s.order = s.order[1:]
		}
		// Ids forgotten by forget stay in order until their turn: compact
		// now and then so order does not grow without bound.
		if len(s.order) > 2*s.max {
			kept := s.order[:0]
			for _, id := range s.order {
				if s.m[id] != nil || id == m.ID {
					kept = append(kept, id)
				}
			}
			s.order = kept
		}
	}
	s.m[m.ID] = next
	return out
}
