package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	tapi "github.com/tandem-run/tandem/api"
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

// failingSagaRoute: reserve dies at once (the flaky target answers 400),
// so the saga undoes charge.
const failingSagaRoute = `
  - name: fsaga
    path: /fsaga
    saga: true
    steps:
      - { name: charge, target: ok, compensate: { target: ok } }
      - { name: reserve, target: flaky, after: [charge] }
`

func TestReplayRefusedAfterCompensation(t *testing.T) {
	t.Parallel()
	r := newRig(t, failingSagaRoute)
	id := r.send(t, "/fsaga", `{"n":1}`)
	var m struct {
		Status     string `json:"status"`
		Deliveries []struct {
			ID     string `json:"id"`
			Step   string `json:"step"`
			Status string `json:"status"`
		} `json:"deliveries"`
	}
	waitFor(t, "the saga to be compensated", func() bool {
		r.getJSON(t, "/v1/messages/"+id, &m)
		return m.Status == "compensated"
	})
	var reserve string
	for _, d := range m.Deliveries {
		if d.Step == "reserve" && d.Status == "dead" {
			reserve = d.ID
		}
	}
	if reserve == "" {
		t.Fatalf("no dead reserve delivery: %+v", m.Deliveries)
	}
	resp, b := r.do(t, "POST", "/v1/deliveries/"+reserve+"/replay", nil, nil)
	p := httpProblem(t, resp, b, http.StatusConflict)
	if p.Type != tapi.TypeReplayRefused || !strings.Contains(p.Detail, "compensation has begun") {
		t.Errorf("problem %+v, want type %s", p, tapi.TypeReplayRefused)
	}
	resp, b = r.do(t, "POST", "/v1/dead-letters/replay", []byte(`{"ids":["`+reserve+`"]}`), map[string]string{"Content-Type": "application/json"})
	var res replayResult
	if resp.StatusCode != 200 || json.Unmarshal(b, &res) != nil {
		t.Fatalf("bulk replay: %d %s", resp.StatusCode, b)
	}
	if res.Replayed != 0 || len(res.Skipped) != 1 || res.Skipped[0].ID != reserve || !strings.Contains(res.Skipped[0].Reason, "compensation has begun") {
		t.Errorf("bulk replay %+v, want reserve skipped", res)
	}
}
