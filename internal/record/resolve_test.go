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
