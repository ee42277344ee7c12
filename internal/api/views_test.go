package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store/sqlite"
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

// TestIdempotencyInFlightOverHTTP: a repeat while the first request with
// the key still waits for its answer gets 409 idempotency-in-flight; a
// repeat after the answer gets that answer.
func TestIdempotencyInFlightOverHTTP(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer slow.Close()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // runs before slow.Close, so a failed check cannot hang the test
	cfg, err := config.Parse(fmt.Appendf(nil, `
targets:
  slow: { url: %q }
routes:
  - { name: wait, path: /wait, respond: all, deadline: 10s, steps: [{ name: s, target: slow }] }
`, slow.URL), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "t.db"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: quietLogger(), PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Engine: eng, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(sctx)
		_ = st.Close()
	})
	post := func() (*http.Response, []byte) {
		req, _ := http.NewRequest("POST", srv.URL+"/wait", strings.NewReader(`{"n":1}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k-1")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Error(err)
			return nil, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	type answer struct {
		resp *http.Response
		body []byte
	}
	first := make(chan answer, 1)
	go func() {
		resp, b := post()
		first <- answer{resp, b}
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request never reached the target")
	}
	resp, b := post()
	p := httpProblem(t, resp, b, http.StatusConflict)
	if p.Type != tapi.TypeIdempotencyInFlight {
		t.Errorf("repeat while the first waits: %+v, want type %s", p, tapi.TypeIdempotencyInFlight)
	}
	free()
	a := <-first
	if a.resp == nil || a.resp.StatusCode != http.StatusOK {
		t.Fatalf("first answer: %v %s", a.resp, a.body)
	}
	resp, b = post()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("repeat after the answer: %d %s (replayed %q)", resp.StatusCode, b, resp.Header.Get("Idempotent-Replayed"))
	}
}
