package api

import (
	"testing"
)

// sagaRoute is a saga route for newRig: charge (undone by charge.compensate)
// and reserve, both on the target that answers 200.
const sagaRoute = `
  - name: saga
    path: /saga
    saga: true
    steps:
      - { name: charge, target: ok, compensate: { target: ok } }
      - { name: reserve, target: ok, after: [charge] }
`

func TestMessageDetailCompensatesOnlyOnCompensations(t *testing.T) {
	t.Parallel()
	r := newRig(t, sagaRoute)
	id := r.send(t, "/saga", `{"n":1}`)
	var m struct {
		Status     string `json:"status"`
		Deliveries []struct {
			Step         string `json:"step"`
			Compensates  string `json:"compensates"`
			Compensation string `json:"compensation"`
		} `json:"deliveries"`
	}
	waitFor(t, "the saga to succeed", func() bool {
		r.getJSON(t, "/v1/messages/"+id, &m)
		return m.Status == "succeeded"
	})
	want := map[string][2]string{
		"charge":            {"", "charge.compensate"},
		"reserve":           {"", ""},
		"charge.compensate": {"charge", ""},
	}
	if len(m.Deliveries) != len(want) {
		t.Fatalf("deliveries %+v, want %d", m.Deliveries, len(want))
	}
	for _, d := range m.Deliveries {
		w, ok := want[d.Step]
		if !ok {
			t.Errorf("unexpected delivery %q", d.Step)
			continue
		}
		if d.Compensates != w[0] || d.Compensation != w[1] {
			t.Errorf("%s: compensates %q, compensation %q; want %q, %q", d.Step, d.Compensates, d.Compensation, w[0], w[1])
		}
	}
}
