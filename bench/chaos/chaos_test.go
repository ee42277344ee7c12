package main

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tandem-run/tandem/bench/chaos/history"
	"github.com/tandem-run/tandem/internal/config"
)

// A seed fixes the schedule; another seed gives another.
func TestPlanIsSeeded(t *testing.T) {
	a := plan(42, "postgres", 60*time.Second, 3)
	b := plan(42, "postgres", 60*time.Second, 3)
	c := plan(43, "postgres", 60*time.Second, 3)
	if len(a) < 20 {
		t.Fatalf("%d events in 60s, want at least 20", len(a))
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("the same seed gave two schedules")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("seeds 42 and 43 gave the same schedule")
	}
	kinds := map[string]bool{}
	for _, e := range a {
		kinds[e.Kind] = true
		if e.At < time.Second || e.At >= 59*time.Second {
			t.Errorf("event at %v, outside the fault window", e.At)
		}
	}
	for _, k := range []string{evKill, evTarget, evLink, evReplay, evDBCut, evDBLatency} {
		if !kinds[k] {
			t.Errorf("no %s event in 60s", k)
		}
	}
	for _, e := range plan(42, "sqlite", 60*time.Second, 1) {
		if e.Kind == evDBCut || e.Kind == evDBLatency || e.Replica != 0 {
			t.Errorf("sqlite schedule has %s", e)
		}
	}
}

// The config every incarnation runs is one tandem accepts.
func TestRenderedConfigLoads(t *testing.T) {
	addrs := map[string]string{}
	for _, s := range targetSpecs {
		addrs[s.name] = "127.0.0.1:9"
	}
	for _, driver := range []string{"sqlite", "postgres"} {
		text := renderConfig(driver, "postgres://x@127.0.0.1:5432/db", addrs, 2, 7)
		cfg, err := config.Parse([]byte(text), "chaos.yaml")
		if err != nil {
			t.Fatalf("%s config: %v\n%s", driver, err, text)
		}
		if got := cfg.Targets["refunds"].Headers[senderHeader]; got != "2-7" {
			t.Errorf("sender header %q, want 2-7", got)
		}
		if len(cfg.Routes) != len(routes) {
			t.Errorf("%d routes, want %d", len(cfg.Routes), len(routes))
		}
	}
}

// Each mode does what it says, and the target records it.
func TestTargetModes(t *testing.T) {
	tests := []struct {
		mode    string
		want    history.Outcome
		ok      bool // the client got a 200
		doneNow bool // the key counts as done afterwards
	}{
		{"", history.OK, true, true},
		{modeFail, history.Fail, false, false},
		{modeRetryAfter, history.RetryAfter, false, false},
		{modeReset, history.Reset, false, false},
		{modeOKReset, history.OKReset, false, true},
		{modeStall, history.Abandoned, false, false},
		{modeSlow, history.OK, true, true},
	}
	for _, tt := range tests {
		t.Run("mode "+tt.mode, func(t *testing.T) {
			tg := newTarget("x", 1, time.Second, 0)
			tg.basePct = 0
			if tt.mode != "" {
				tg.setRule(1, rule{mode: tt.mode, pct: 100})
			}
			ts := httptest.NewServer(tg)
			defer ts.Close()
			// The client gives up after 1.5s, as tandem would after its
			// timeout: a stall (2s) outlasts it, a slow answer does not (a loaded
			// machine needs the room).
			c := &http.Client{Timeout: 1500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/x", strings.NewReader("{}"))
			req.Header.Set("Idempotency-Key", "m1.a")
			req.Header.Set(senderHeader, "1-3")
			resp, err := c.Do(req)
			ok := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				resp.Body.Close()
			}
			if ok != tt.ok {
				t.Errorf("client got a 200: %v (%v), want %v", ok, err, tt.ok)
			}
			var reqs []history.Request
			deadline := time.Now().Add(2 * time.Second)
			for len(reqs) == 0 && time.Now().Before(deadline) {
				reqs = tg.requests()
				time.Sleep(5 * time.Millisecond)
			}
			if len(reqs) != 1 {
				t.Fatalf("%d requests recorded, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Outcome != tt.want || r.Key != "m1.a" || r.Sender != (history.Sender{Replica: 1, Gen: 3}) {
				t.Errorf("recorded %+v, want outcome %s from 1-3", r, tt.want)
			}
			if r.End.Before(r.Start) {
				t.Errorf("ends %v before it starts", r.Start.Sub(r.End))
			}
			if tt.mode == modeRetryAfter && r.Status != http.StatusTooManyRequests && r.Status != http.StatusServiceUnavailable {
				t.Errorf("retry-after answered %d", r.Status)
			}
			if _, done := tg.decide("m1.a", 2); done != tt.doneNow {
				t.Errorf("done after the request: %v, want %v", done, tt.doneNow)
			}
		})
	}
}

// Once a key's work is done, the target answers it 2xx whatever its rules.
func TestTargetIsIdempotent(t *testing.T) {
	tg := newTarget("x", 1, time.Second, 0)
	tg.markDone("m1.a")
	tg.setRule(1, rule{mode: modeFail, pct: 100})
	if mode, done := tg.decide("m1.a", 5); !done || mode != "" {
		t.Errorf("decide on a done key: %q %v", mode, done)
	}
	if mode, done := tg.decide("m2.a", 1); done || mode != modeFail {
		t.Errorf("decide on a new key: %q %v", mode, done)
	}
}
