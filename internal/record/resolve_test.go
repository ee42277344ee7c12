package record

import (
	"testing"
	"time"
)

func d(step string, status DeliveryStatus, after ...string) Delivery {
	return Delivery{ID: "id-" + step, Step: step, Status: status, After: after, Required: true}
}

func TestDeriveMessageStatus(t *testing.T) {
	t.Parallel()
	opt := d("opt", DeliveryDead)
	opt.Required = false
	started := d("b", DeliveryScheduled)
	started.Attempts = 1
	tests := []struct {
		name string
		ds   []Delivery
		want MessageStatus
	}{
		{"nothing started", []Delivery{d("a", DeliveryScheduled), d("b", DeliveryWaiting, "a")}, MessageAccepted},
		{"one running", []Delivery{d("a", DeliveryRunning), d("b", DeliveryScheduled)}, MessageRunning},
		{"retry pending", []Delivery{d("a", DeliverySucceeded), started}, MessageRunning},
		{"all succeeded", []Delivery{d("a", DeliverySucceeded), d("b", DeliverySucceeded)}, MessageSucceeded},
		{"some", []Delivery{d("a", DeliverySucceeded), d("b", DeliveryDead)}, MessagePartiallySucceeded},
		{"none", []Delivery{d("a", DeliveryDead), d("b", DeliverySkipped, "a")}, MessageFailed},
		{"optional failure ignored", []Delivery{d("a", DeliverySucceeded), opt}, MessageSucceeded},
		{"compensated", []Delivery{d("a", DeliveryCompensated), d("b", DeliveryDead)}, MessageCompensated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DeriveMessageStatus(tt.ds); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("ready when all after steps succeeded", func(t *testing.T) {
		ds := []Delivery{d("a", DeliverySucceeded), d("b", DeliverySucceeded), d("c", DeliveryWaiting, "a", "b")}
		ch := Resolve(ds, now)
		if len(ch) != 1 || ch[0].DeliveryID != "id-c" || ch[0].Status != DeliveryScheduled || !ch[0].NextAttemptAt.Equal(now) {
			t.Fatalf("changes %+v", ch)
		}
	})
	t.Run("still waiting on one", func(t *testing.T) {
		ds := []Delivery{d("a", DeliverySucceeded), d("b", DeliveryRunning), d("c", DeliveryWaiting, "a", "b")}
		if ch := Resolve(ds, now); len(ch) != 0 {
			t.Fatalf("changes %+v", ch)
		}
	})
	t.Run("skip propagates down the graph", func(t *testing.T) {
		ds := []Delivery{d("a", DeliveryDead), d("b", DeliveryWaiting, "a"), d("c", DeliveryWaiting, "b"), d("x", DeliveryWaiting)}
		ch := Resolve(ds, now)
		got := map[string]DeliveryStatus{}
		for _, c := range ch {
			got[c.DeliveryID] = c.Status
		}
		if got["id-b"] != DeliverySkipped || got["id-c"] != DeliverySkipped {
			t.Fatalf("changes %+v", ch)
		}
		if got["id-x"] != DeliveryScheduled {
			t.Errorf("a step with no after should become scheduled: %+v", ch)
		}
	})
}

func TestUnskip(t *testing.T) {
	t.Parallel()
	ds := []Delivery{d("a", DeliveryDead), d("b", DeliverySkipped, "a"), d("c", DeliverySkipped, "b"), d("z", DeliverySkipped, "y")}
	ch := Unskip(ds, "a")
	if len(ch) != 2 || ch[0].DeliveryID != "id-b" || ch[1].DeliveryID != "id-c" || ch[0].Status != DeliveryWaiting {
		t.Fatalf("changes %+v", ch)
	}
}

func TestJSONBody(t *testing.T) {
	t.Parallel()
	if got := string(JSONBody([]byte(`{"a":1}`))); got != `{"a":1}` {
		t.Errorf("json kept: %s", got)
	}
	if got := string(JSONBody([]byte(`not "json`))); got != `"not \"json"` {
		t.Errorf("text quoted: %s", got)
	}
	if JSONBody(nil) != nil {
		t.Errorf("empty body should be nil")
	}
}

// saga builds a message of forward steps and compensations; c marks a
// compensation of step s.
func c(step string, status DeliveryStatus) Delivery {
	return Delivery{ID: "id-" + CompensationStep(step), Step: CompensationStep(step), Status: status}
}

// apply returns ds with the changes applied, by step.
func apply(ds []Delivery, cs []Change) map[string]DeliveryStatus {
	out := map[string]DeliveryStatus{}
	for _, d := range ds {
		out[d.Step] = d.Status
	}
	for _, ch := range cs {
		for _, d := range ds {
			if d.ID == ch.DeliveryID {
				out[d.Step] = ch.Status
			}
		}
	}
	return out
}

func TestResolveSaga(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	opt := d("opt", DeliveryDead)
	opt.Required = false
	tests := []struct {
		name string
		ds   []Delivery
		want map[string]DeliveryStatus // only the steps that must change
	}{
		{"compensations wait while a step runs",
			[]Delivery{d("a", DeliverySucceeded), d("b", DeliveryRunning, "a"), c("a", DeliveryWaiting)},
			map[string]DeliveryStatus{}},
		{"all succeeded: compensations cancelled",
			[]Delivery{d("a", DeliverySucceeded), d("b", DeliverySucceeded, "a"), c("a", DeliveryWaiting), c("b", DeliveryWaiting)},
			map[string]DeliveryStatus{"a.compensate": DeliveryCancelled, "b.compensate": DeliveryCancelled}},
		{"an optional failure does not compensate",
			[]Delivery{d("a", DeliverySucceeded), opt, c("a", DeliveryWaiting)},
			map[string]DeliveryStatus{"a.compensate": DeliveryCancelled}},
		{"a required failure compensates what succeeded",
			[]Delivery{d("a", DeliverySucceeded), d("b", DeliveryDead, "a"), c("a", DeliveryWaiting), c("b", DeliveryWaiting)},
			map[string]DeliveryStatus{"a.compensate": DeliveryScheduled, "a": DeliveryCompensating, "b.compensate": DeliveryCancelled}},
		{"reverse order: the deeper step's compensation first",
			[]Delivery{d("a", DeliverySucceeded), d("b", DeliverySucceeded, "a"), d("c", DeliveryDead, "b"), d("x", DeliverySucceeded),
				c("a", DeliveryWaiting), c("b", DeliveryWaiting), c("x", DeliveryWaiting)},
			map[string]DeliveryStatus{"b.compensate": DeliveryScheduled, "b": DeliveryCompensating, "x.compensate": DeliveryScheduled, "x": DeliveryCompensating}},
		{"then the step it depended on",
			[]Delivery{d("a", DeliverySucceeded), d("b", DeliveryCompensated, "a"), d("c", DeliveryDead, "b"),
				c("a", DeliveryWaiting), c("b", DeliverySucceeded)},
			map[string]DeliveryStatus{"a.compensate": DeliveryScheduled, "a": DeliveryCompensating}},
		{"a transitive dependant's compensation comes first too",
			[]Delivery{d("a", DeliverySucceeded), d("b", DeliverySucceeded, "a"), d("c", DeliverySucceeded, "b"), d("z", DeliveryDead, "c"),
				c("a", DeliveryWaiting), c("c", DeliveryRunning)},
			map[string]DeliveryStatus{"c": DeliveryCompensating}},
		{"a succeeded compensation marks its step compensated",
			[]Delivery{d("a", DeliveryCompensating), d("b", DeliveryDead, "a"), c("a", DeliverySucceeded)},
			map[string]DeliveryStatus{"a": DeliveryCompensated}},
		{"a dead compensation leaves its step succeeded and the others go on",
			[]Delivery{d("a", DeliverySucceeded), d("b", DeliveryCompensating, "a"), d("c", DeliveryDead, "b"),
				c("a", DeliveryWaiting), c("b", DeliveryDead)},
			map[string]DeliveryStatus{"b": DeliverySucceeded, "a.compensate": DeliveryScheduled, "a": DeliveryCompensating}},
		{"a skipped step has nothing to undo",
			[]Delivery{d("a", DeliveryDead), d("b", DeliveryWaiting, "a"), c("a", DeliveryWaiting), c("b", DeliveryWaiting)},
			map[string]DeliveryStatus{"b": DeliverySkipped, "a.compensate": DeliveryCancelled, "b.compensate": DeliveryCancelled}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := Resolve(tt.ds, now)
			seen := map[string]bool{}
			for _, ch := range cs {
				if seen[ch.DeliveryID] {
					t.Errorf("two changes for %s: %+v", ch.DeliveryID, cs)
				}
				seen[ch.DeliveryID] = true
				if ch.Status == DeliveryScheduled && !ch.NextAttemptAt.Equal(now) {
					t.Errorf("%s scheduled at %v", ch.DeliveryID, ch.NextAttemptAt)
				}
			}
			got := apply(tt.ds, cs)
			for _, dd := range tt.ds {
				want, ok := tt.want[dd.Step]
				if !ok {
					want = dd.Status
				}
				if got[dd.Step] != want {
					t.Errorf("%s: %s, want %s (changes %+v)", dd.Step, got[dd.Step], want, cs)
				}
			}
		})
	}
}

// TestSagaRunsToTheEnd drives a saga through Resolve as the stores do,
// completing whatever is scheduled, and checks the order compensations
// ran in and the final message status.
func TestSagaRunsToTheEnd(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		failComp  string // compensation that dies
		wantOrder []string
		want      MessageStatus
	}{
		{"compensated", "", []string{"ship.compensate", "reserve.compensate", "charge.compensate"}, MessageCompensated},
		{"a compensation fails", "reserve.compensate", []string{"ship.compensate", "reserve.compensate", "charge.compensate"}, MessageFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := []Delivery{
				d("charge", DeliverySucceeded), d("reserve", DeliverySucceeded, "charge"), d("ship", DeliverySucceeded, "reserve"),
				d("invoice", DeliveryDead, "ship"), c("charge", DeliveryWaiting), c("reserve", DeliveryWaiting), c("ship", DeliveryWaiting),
			}
			var order []string
			for range 10 {
				for _, ch := range Resolve(ds, now) {
					for i := range ds {
						if ds[i].ID == ch.DeliveryID {
							ds[i].Status = ch.Status
						}
					}
				}
				if st := DeriveMessageStatus(ds); st.Terminal() {
					if st != tt.want {
						t.Fatalf("status %s, want %s: %+v", st, tt.want, ds)
					}
					if !slicesEqual(order, tt.wantOrder) {
						t.Errorf("order %v, want %v", order, tt.wantOrder)
					}
					return
				}
				// One scheduled delivery at a time finishes.
				for i := range ds {
					if ds[i].Status == DeliveryScheduled {
						order = append(order, ds[i].Step)
						ds[i].Status = DeliverySucceeded
						if ds[i].Step == tt.failComp {
							ds[i].Status = DeliveryDead
						}
						break
					}
				}
			}
			t.Fatalf("saga did not end: %+v", ds)
		})
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDeriveMessageStatusSaga(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ds   []Delivery
		want MessageStatus
	}{
		{"waiting compensation keeps it running", []Delivery{d("a", DeliverySucceeded), c("a", DeliveryWaiting)}, MessageRunning},
		{"cancelled compensations do not count", []Delivery{d("a", DeliverySucceeded), c("a", DeliveryCancelled)}, MessageSucceeded},
		{"compensated", []Delivery{d("a", DeliveryCompensated), d("b", DeliveryDead, "a"), c("a", DeliverySucceeded)}, MessageCompensated},
		{"a dead compensation fails the message", []Delivery{d("a", DeliverySucceeded), d("b", DeliveryDead, "a"), c("a", DeliveryDead)}, MessageFailed},
		{"nothing to undo", []Delivery{d("a", DeliveryDead), d("b", DeliverySkipped, "a"), c("a", DeliveryCancelled)}, MessageFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DeriveMessageStatus(tt.ds); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestUnskipReopensSaga(t *testing.T) {
	t.Parallel()
	ds := []Delivery{d("a", DeliverySucceeded), d("b", DeliveryDead, "a"), d("x", DeliveryDead), c("a", DeliverySucceeded), c("x", DeliveryCancelled)}
	got := apply(ds, Unskip(ds, "b"))
	if got["x.compensate"] != DeliveryWaiting || got["a.compensate"] != DeliverySucceeded {
		t.Errorf("after replaying b: %v", got)
	}
	if cs := Unskip(ds, "x.compensate"); len(cs) != 0 {
		t.Errorf("replaying a compensation changed %+v", cs)
	}
}

func TestGraphOrder(t *testing.T) {
	t.Parallel()
	// As a store returns them: by step name.
	ds := []Delivery{c("a", DeliveryWaiting), c("b", DeliveryWaiting), d("a", DeliverySucceeded, "b"), d("b", DeliverySucceeded), d("c", DeliverySucceeded, "a"), d("d", DeliverySucceeded)}
	var got []string
	for _, x := range GraphOrder(ds) {
		got = append(got, x.Step)
	}
	want := []string{"b", "a", "c", "d", "a.compensate", "b.compensate"}
	if !slicesEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}
