package history

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

// at is t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

var (
	plain = Route{Name: "orders", Steps: []Step{{Name: "a"}, {Name: "b"}}}
	saga  = Route{Name: "trip", Saga: true, Steps: []Step{
		{Name: "charge", Compensate: true},
		{Name: "reserve", After: []string{"charge"}, Compensate: true},
		{Name: "ship", After: []string{"reserve"}},
	}}
	r1g1 = Sender{Replica: 0, Gen: 1}
	r1g2 = Sender{Replica: 0, Gen: 2}
	r2g1 = Sender{Replica: 1, Gen: 1}
)

// req is a request of key from s over [from, to] ms.
func req(key string, s Sender, from, to int, o Outcome) Request {
	return Request{Target: "t", Key: key, Sender: s, Start: at(from), End: at(to), Outcome: o, Status: 200}
}

// att is a recorded attempt over [from, to] ms.
func att(n, from, to, status int, outcome string) Attempt {
	return Attempt{N: n, Start: at(from), Duration: time.Duration(to-from) * time.Millisecond, HTTPStatus: status, Outcome: outcome}
}

func del(step, status string, atts ...Attempt) Delivery {
	return Delivery{Step: step, Status: status, Attempts: atts}
}

// okPlain is message m1 on the plain route, delivered once to a and b.
func okPlain() *History {
	return &History{
		Routes: []Route{plain, saga},
		Acks:   []Ack{{Key: "c1", MessageID: "m1", Route: "orders", At: at(0)}},
		Requests: []Request{
			req("m1.a", r1g1, 10, 20, OK),
			req("m1.b", r1g1, 10, 25, OK),
		},
		Messages: []Message{{ID: "m1", Route: "orders", Status: "succeeded", IdempotencyKey: "c1", Deliveries: []Delivery{
			del("a", "succeeded", att(1, 9, 21, 200, "success")),
			del("b", "succeeded", att(1, 9, 26, 200, "success")),
		}}},
	}
}

// sagaCompensated is message s1 on the saga route: charge and reserve
// succeeded, ship was declined, reserve then charge were compensated.
func sagaCompensated() *History {
	return &History{
		Routes: []Route{plain, saga},
		Acks:   []Ack{{Key: "c2", MessageID: "s1", Route: "trip", At: at(0)}},
		Requests: []Request{
			req("s1.charge", r1g1, 10, 20, OK),
			req("s1.reserve", r1g1, 30, 40, OK),
			req("s1.ship", r1g1, 50, 60, Decline),
			req("s1.reserve.compensate", r1g1, 70, 80, OK),
			req("s1.charge.compensate", r1g1, 90, 100, OK),
		},
		Messages: []Message{{ID: "s1", Route: "trip", Status: "compensated", IdempotencyKey: "c2", Deliveries: []Delivery{
			del("charge", "compensated", att(1, 9, 21, 200, "success")),
			del("reserve", "compensated", att(1, 29, 41, 200, "success")),
			del("ship", "dead", att(1, 49, 61, 422, "permanent")),
			del("reserve.compensate", "succeeded", att(1, 69, 81, 200, "success")),
			del("charge.compensate", "succeeded", att(1, 89, 101, 200, "success")),
		}}},
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		h      func() *History
		want   []Kind // the violations, in order of kind
		verify func(t *testing.T, r *Report)
	}{
		{"clean plain message", okPlain, nil, func(t *testing.T, r *Report) {
			if r.Delivered != 1 || r.Lost != 0 {
				t.Errorf("delivered %d lost %d, want 1, 0", r.Delivered, r.Lost)
			}
		}},
		{"clean compensated saga", sagaCompensated, nil, func(t *testing.T, r *Report) {
			if r.SagaCompensated != 1 || r.Delivered != 1 {
				t.Errorf("saga compensated %d delivered %d, want 1, 1", r.SagaCompensated, r.Delivered)
			}
		}},
		{"acknowledged, not stored", func() *History {
			h := okPlain()
			h.Acks = append(h.Acks, Ack{Key: "c9", MessageID: "m9", Route: "orders", At: at(5)})
			return h
		}, []Kind{Lost}, nil},
		{"recorded succeeded, the target never saw a 2xx", func() *History {
			h := okPlain()
			h.Requests = []Request{req("m1.a", r1g1, 10, 20, OK), req("m1.b", r1g1, 10, 25, Fail)}
			return h
		}, []Kind{Lost}, nil},
		{"not settled after the drain", func() *History {
			h := okPlain()
			h.Messages[0].Status = "running"
			return h
		}, []Kind{Lost}, nil},
		{"two requests of one key in flight at once", func() *History {
			h := okPlain()
			h.Requests = append(h.Requests, req("m1.a", r2g1, 15, 30, OK))
			return h
		}, []Kind{Concurrent}, func(t *testing.T, r *Report) {
			if r.ConcurrentDoubles != 1 {
				t.Errorf("concurrent doubles %d, want 1", r.ConcurrentDoubles)
			}
		}},
		{"an abandoned request noticed a moment late is no double", func() *History {
			h := okPlain()
			h.Requests = []Request{
				req("m1.a", r1g1, 0, 13, Abandoned), // tandem timed out at 12
				req("m1.a", r1g1, 12, 20, OK),
				req("m1.b", r1g1, 10, 25, OK),
			}
			h.Messages[0].Deliveries[0].Attempts = []Attempt{att(1, 0, 11, 0, "transient"), att(2, 11, 21, 200, "success")}
			return h
		}, nil, func(t *testing.T, r *Report) {
			if r.ConcurrentExcused != 1 || r.ConcurrentDoubles != 0 {
				t.Errorf("excused %d doubles %d, want 1, 0", r.ConcurrentExcused, r.ConcurrentDoubles)
			}
		}},
		{"an abandoned request that ran on for long is a double", func() *History {
			h := okPlain()
			h.Requests = []Request{
				req("m1.a", r1g1, 0, 300, Abandoned),
				req("m1.a", r2g1, 12, 20, OK),
				req("m1.b", r1g1, 10, 25, OK),
			}
			return h
		}, []Kind{Concurrent}, nil},
		{"duplicate in a crash window: the sender was killed before its record", func() *History {
			h := okPlain()
			// gen 1 got the 2xx at 10–20 and was killed at 22; gen 2
			// claimed the delivery when the lease ran out and sent again.
			h.Requests = append(h.Requests, req("m1.a", r1g2, 2100, 2110, OK))
			h.Messages[0].Deliveries[0].Attempts = []Attempt{att(1, 2099, 2111, 200, "success")}
			h.Faults = []Fault{{Kind: Kill, Replica: 0, Gen: 1, Start: at(22), End: at(23)}}
			return h
		}, nil, func(t *testing.T, r *Report) {
			if r.DuplicatesInCrashWindow != 1 || r.Kills != 1 {
				t.Errorf("in window %d kills %d, want 1, 1", r.DuplicatesInCrashWindow, r.Kills)
			}
		}},
		{"duplicate in a crash window: the sender's database was cut", func() *History {
			h := okPlain()
			h.Requests = append(h.Requests, req("m1.a", r2g1, 2100, 2110, OK))
			h.Messages[0].Deliveries[0].Attempts = []Attempt{att(1, 2099, 2111, 200, "success")}
			h.Faults = []Fault{{Kind: DBCut, Replica: 0, Start: at(15), End: at(1500)}}
			return h
		}, nil, func(t *testing.T, r *Report) {
			if r.DuplicatesInCrashWindow != 1 {
				t.Errorf("in window %d, want 1", r.DuplicatesInCrashWindow)
			}
		}},
		{"duplicate outside a crash window: nothing struck the sender", func() *History {
			h := okPlain()
			h.Requests = append(h.Requests, req("m1.a", r2g1, 2100, 2110, OK))
			h.Messages[0].Deliveries[0].Attempts = []Attempt{att(1, 2099, 2111, 200, "success")}
			// A kill, but of another replica, and a cut after the duplicate.
			h.Faults = []Fault{
				{Kind: Kill, Replica: 1, Gen: 1, Start: at(22), End: at(23)},
				{Kind: DBCut, Replica: 0, Start: at(2200), End: at(2300)},
			}
			return h
		}, []Kind{DuplicateOutside}, nil},
		{"duplicate after a recorded success, even with a kill after it", func() *History {
			h := okPlain()
			// The 2xx at 10–20 was recorded (attempt 1); a kill at 22 does
			// not excuse sending it again.
			h.Requests = append(h.Requests, req("m1.a", r1g2, 2100, 2110, OK))
			h.Faults = []Fault{{Kind: Kill, Replica: 0, Gen: 1, Start: at(22), End: at(23)}}
			return h
		}, []Kind{DuplicateOutside}, nil},
		{"duplicate after a lost answer", func() *History {
			h := okPlain()
			// The target answered 2xx at 10–20, the answer was lost, and
			// tandem recorded attempt 1 as a timeout and retried.
			h.Requests = append(h.Requests, req("m1.a", r1g1, 40, 50, OK))
			h.Messages[0].Deliveries[0].Attempts = []Attempt{att(1, 9, 30, 0, "transient"), att(2, 39, 51, 200, "success")}
			return h
		}, nil, func(t *testing.T, r *Report) {
			if r.DuplicatesLostAnswer != 1 {
				t.Errorf("lost answers %d, want 1", r.DuplicatesLostAnswer)
			}
		}},
		{"a resend inside one recorded attempt", func() *History {
			h := okPlain()
			// The client resent on its own within attempt 1: the target
			// did the work (then the connection broke) and got it again.
			h.Requests = []Request{req("m1.a", r1g1, 10, 12, OKReset), req("m1.a", r1g1, 13, 20, OK), req("m1.b", r1g1, 10, 25, OK)}
			return h
		}, []Kind{DuplicateOutside}, func(t *testing.T, r *Report) {
			if r.Uncounted != 1 {
				// Both requests fall inside attempt 1's time.
				t.Errorf("uncounted %d, want 1", r.Uncounted)
			}
			if len(r.Violations) == 1 && !strings.Contains(r.Violations[0].Details, "on its own") {
				t.Errorf("details do not name the resend: %s", r.Violations[0].Details)
			}
		}},
		{"a copy the network held back is stale, not a duplicate", func() *History {
			h := okPlain()
			h.Requests = append(h.Requests, req("m1.a", r1g1, 500, 501, Abandoned))
			return h
		}, nil, func(t *testing.T, r *Report) {
			if r.Stale != 1 {
				t.Errorf("stale %d, want 1", r.Stale)
			}
		}},
		{"two messages for one key", func() *History {
			h := okPlain()
			h.Messages = append(h.Messages, Message{ID: "m2", Route: "orders", Status: "succeeded", IdempotencyKey: "c1"})
			return h
		}, []Kind{TwoMessagesOneKey}, nil},
		{"a request without an Idempotency-Key", func() *History {
			h := okPlain()
			h.Requests = append(h.Requests, req("", r1g1, 30, 40, OK))
			return h
		}, []Kind{MissingKey}, nil},
		{"compensation out of order", func() *History {
			h := sagaCompensated()
			// charge.compensate before reserve.compensate.
			h.Requests[3].Key, h.Requests[4].Key = "s1.charge.compensate", "s1.reserve.compensate"
			return h
		}, []Kind{SagaOrder}, nil},
		{"compensation while the downstream one is still retried", func() *History {
			h := sagaCompensated()
			h.Requests = append(h.Requests, req("s1.reserve.compensate", r1g1, 95, 99, OK))
			h.Requests[3].Outcome = Fail
			return h
		}, []Kind{SagaOrder}, nil},
		{"compensation of a step that never ran", func() *History {
			h := sagaCompensated()
			// reserve never reached its target: refused at once (503 from
			// the proxy side), yet its compensation was sent.
			h.Requests = append(h.Requests[:1], h.Requests[2:]...)
			h.Messages[0].Deliveries[1] = del("reserve", "dead", att(1, 29, 41, 503, "transient"))
			return h
		}, []Kind{SagaNeverRan}, nil},
		{"compensation of a step whose outcome tandem could not know", func() *History {
			h := sagaCompensated()
			h.Requests = append(h.Requests[:1], h.Requests[2:]...)
			h.Messages[0].Deliveries[1] = del("reserve", "dead", att(1, 29, 41, 0, "transient"))
			return h
		}, nil, func(t *testing.T, r *Report) {
			if r.CompensatedUnknown != 1 {
				t.Errorf("compensated unknown %d, want 1", r.CompensatedUnknown)
			}
		}},
		{"forward step after compensation began", func() *History {
			h := sagaCompensated()
			// ship replayed from the dead letters after the compensations.
			h.Requests = append(h.Requests, req("s1.ship", r1g1, 200, 210, OK))
			return h
		}, []Kind{SagaForwardAfter}, nil},
		{"an abandoned forward copy after compensation is stale", func() *History {
			h := sagaCompensated()
			h.Requests = append(h.Requests, req("s1.ship", r1g1, 200, 201, Abandoned))
			return h
		}, nil, nil},
		{"step done but never compensated", func() *History {
			h := sagaCompensated()
			// charge's answer was lost; tandem thought it failed, so
			// nothing was compensated and the saga failed.
			h.Requests = []Request{req("s1.charge", r1g1, 10, 20, OK)}
			h.Messages[0].Status = "failed"
			h.Messages[0].Deliveries = []Delivery{
				del("charge", "dead", att(1, 9, 30, 0, "transient")),
				del("reserve", "skipped"), del("ship", "skipped"),
				del("reserve.compensate", "cancelled"), del("charge.compensate", "cancelled"),
			}
			return h
		}, []Kind{SagaNotUndone}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(tt.h(), Options{})
			var got []Kind
			for _, v := range r.Violations {
				got = append(got, v.Kind)
			}
			if strings.Join(kinds(got), ",") != strings.Join(kinds(tt.want), ",") {
				t.Errorf("violations %q, want %q", got, tt.want)
				for _, v := range r.Violations {
					t.Log(v)
				}
			}
			if r.Failed() != (len(tt.want) > 0) {
				t.Errorf("Failed() = %v", r.Failed())
			}
			if tt.verify != nil {
				tt.verify(t, r)
			}
		})
	}
}

func kinds(ks []Kind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

// The lost count and the delivered count add up to the acknowledged.
func TestCheckCounts(t *testing.T) {
	h := okPlain()
	h.Acks = append(h.Acks, Ack{Key: "c9", MessageID: "m9", Route: "orders"})
	r := Check(h, Options{})
	if r.Acknowledged != 2 || r.Delivered != 1 || r.Lost != 1 {
		t.Errorf("acknowledged %d delivered %d lost %d, want 2, 1, 1", r.Acknowledged, r.Delivered, r.Lost)
	}
	if r.Requests != 2 || r.MessagesByStatus["succeeded"] != 1 {
		t.Errorf("requests %d, by status %v", r.Requests, r.MessagesByStatus)
	}
}

// The crash window opens one lease before the 2xx: a fault on its sender
// while the claim that sent it was held can cost the record.
func TestCheckLeaseWindow(t *testing.T) {
	tests := []struct {
		name     string
		from, to int // the sender's database fault, ms
		lease    time.Duration
		outside  bool
	}{
		{"the cut ended before the 2xx, within one lease", -500, 5, 1800 * time.Millisecond, false},
		{"the cut ended more than a lease before", -3000, -1900, 1800 * time.Millisecond, true},
		{"without a lease the window starts at the 2xx", -500, 5, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := okPlain()
			h.Requests = append(h.Requests, req("m1.a", r2g1, 2100, 2110, OK))
			h.Messages[0].Deliveries[0].Attempts = []Attempt{att(1, 2099, 2111, 200, "success")}
			h.Faults = []Fault{{Kind: DBLatency, Replica: 0, Start: at(tt.from), End: at(tt.to)}}
			r := Check(h, Options{Lease: tt.lease})
			if got := r.DuplicatesOutside == 1; got != tt.outside || r.Failed() != tt.outside {
				t.Errorf("outside %d, in window %d, failed %v; want outside %v", r.DuplicatesOutside, r.DuplicatesInCrashWindow, r.Failed(), tt.outside)
			}
		})
	}
}
