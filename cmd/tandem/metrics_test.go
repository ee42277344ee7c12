package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tandem-run/tandem/client"
	"github.com/tandem-run/tandem/internal/config"
)

// scrape gets /metrics in the Prometheus text format, raw and parsed.
func scrape(t *testing.T, base string) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return raw, fams
}

// series returns the value of the series of family name with exactly the
// given labels (a histogram's sample count), and whether it exists.
func series(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, lp := range m.GetLabel() {
			if labels[lp.GetName()] != lp.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func send(t *testing.T, method, url, contentType, key, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestMetricsTellTheTruth runs a script against a real server (durable
// and durable: false routes, a saga, bad requests, admin calls), then
// parses /metrics with the Prometheus text parser and checks each series
// issue 11 names; promtool checks the exposition, and OpenMetrics carries
// trace id exemplars.
func TestMetricsTellTheTruth(t *testing.T) {
	t.Parallel()
	recv := &otlpReceiver{}
	endpoint := startOTLPHTTP(t, recv)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"ok"}`)
	}))
	t.Cleanup(ok.Close)
	nope := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(nope.Close)
	yaml := fmt.Sprintf(`server: { listen: "127.0.0.1:0", max_body: 64B, shutdown_grace: 5s }
store: { driver: sqlite, dsn: %q }
log: { level: error }
telemetry:
  tracing: { exporter: otlp, endpoint: %q, protocol: http/protobuf, sample_ratio: 1 }
targets:
  ok: { url: %q, breaker: { disabled: true } }
  nope: { url: %q, retry: { max_attempts: 1 } }
  idle: { url: %q }
routes:
  - name: orders
    path: /orders
    steps:
      - { name: a, target: ok }
      - { name: b, target: nope }
  - name: quick
    path: /quick
    durable: false
    respond: all
    steps:
      - { name: one, target: ok }
  - name: unused
    path: /unused
    steps:
      - { name: x, target: idle }
`, filepath.Join(t.TempDir(), "metrics.db"), endpoint+"/v1/traces", ok.URL, nope.URL, ok.URL)
	cfg, err := config.Parse([]byte(yaml), "metrics.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = srv.stop()
		}
	})
	base := "http://" + srv.addr.String()

	// The script.
	const js = "application/json"
	codes := map[string]int{}
	for i := range 3 {
		codes["orders 202"] += b2i(send(t, http.MethodPost, base+"/orders", js, fmt.Sprintf("k%d", i), `{"n":1}`) == 202)
	}
	codes["orders 422"] += b2i(send(t, http.MethodPost, base+"/orders", js, "k0", `{"n":2}`) == 422)
	codes["orders 400"] += b2i(send(t, http.MethodPost, base+"/orders", js, "", `{"n":`) == 400)
	codes["orders 405"] += b2i(send(t, http.MethodGet, base+"/orders", "", "", "") == 405)
	codes["orders 413"] += b2i(send(t, http.MethodPost, base+"/orders", js, "", `{"pad":"`+strings.Repeat("x", 100)+`"}`) == 413)
	for range 2 {
		codes["quick 200"] += b2i(send(t, http.MethodPost, base+"/quick", js, "", `{}`) == 200)
	}
	for k, n := range map[string]int{"orders 202": 3, "orders 422": 1, "orders 400": 1, "orders 405": 1, "orders 413": 1, "quick 200": 2} {
		if codes[k] != n {
			t.Fatalf("script: %d answers %s, want %d", codes[k], k, n)
		}
	}
	c := client.New(base, "")
	waitFor(t, 20*time.Second, "orders settled", func() bool {
		ms, _, err := c.Messages(context.Background(), client.ListOptions{Limit: 10})
		if err != nil || len(ms) != 3 {
			return false
		}
		for _, m := range ms {
			if m.Status != "partially_succeeded" && m.Status != "failed" {
				return false
			}
		}
		return true
	})
	ms, _, _ := c.Messages(context.Background(), client.ListOptions{Limit: 10})
	if _, err := c.Message(context.Background(), ms[0].ID); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Message(context.Background(), "no-such-message")

	raw, fams := scrape(t, base)
	type check struct {
		name   string
		labels map[string]string
		want   float64 // -1: any value, the series must exist
	}
	l := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	checks := []check{
		{"tandem_messages_accepted_total", l("route", "orders"), 3},
		{"tandem_messages_accepted_total", l("route", "unused"), 0},
		{"tandem_route_answers_total", l("route", "orders", "code", "202"), 3},
		{"tandem_route_answers_total", l("route", "orders", "code", "422"), 1},
		{"tandem_route_answers_total", l("route", "orders", "code", "400"), 1},
		{"tandem_route_answers_total", l("route", "orders", "code", "405"), 1},
		{"tandem_route_answers_total", l("route", "orders", "code", "413"), 1},
		{"tandem_route_answers_total", l("route", "quick", "code", "200"), 2},
		{"tandem_attempts_total", l("route", "orders", "step", "a", "target", "ok", "outcome", "success"), 3},
		{"tandem_attempts_total", l("route", "orders", "step", "b", "target", "nope", "outcome", "permanent"), 3},
		{"tandem_attempts_total", l("route", "quick", "step", "one", "target", "ok", "outcome", "success"), 2},
		{"tandem_attempts_total", l("route", "unused", "step", "x", "target", "idle", "outcome", "success"), 0},
		{"tandem_deliveries_total", l("route", "orders", "step", "a", "target", "ok", "status", "succeeded"), 3},
		{"tandem_deliveries_total", l("route", "orders", "step", "b", "target", "nope", "status", "dead"), 3},
		{"tandem_deliveries_total", l("route", "quick", "step", "one", "target", "ok", "status", "succeeded"), 2},
		{"tandem_dead_letters_total", l("route", "orders", "step", "b", "target", "nope"), 3},
		{"tandem_accept_to_delivered_seconds", l("route", "orders", "step", "a", "target", "ok"), 3},
		{"tandem_accept_to_delivered_seconds", l("route", "quick", "step", "one", "target", "ok"), 2},
		{"tandem_attempt_duration_seconds", l("route", "orders", "step", "a", "target", "ok"), 3},
		{"tandem_ingest_duration_seconds", l("route", "orders"), 7},
		{"tandem_breaker_state", l("target", "ok"), 3},
		{"tandem_breaker_state", l("target", "nope"), 0},
		{"tandem_admin_requests_total", l("method", "GET", "path", "/v1/messages/{id}", "code", "200"), 1},
		{"tandem_admin_requests_total", l("method", "GET", "path", "/v1/messages/{id}", "code", "404"), 1},
		{"tandem_target_in_flight", l("target", "idle"), 0},
	}
	for _, target := range []string{"ok", "nope", "idle"} {
		for _, reason := range []string{"breaker_open", "paused", "rate_limit", "shutdown", "lease"} {
			checks = append(checks, check{"tandem_deliveries_postponed_total", l("target", target, "reason", reason), 0})
		}
		for _, state := range []string{"due", "scheduled", "waiting", "running", "dead"} {
			checks = append(checks, check{"tandem_queue_depth", l("target", target, "state", state), -1})
		}
		checks = append(checks, check{"tandem_oldest_due_age_seconds", l("target", target), 0})
	}
	for _, ck := range checks {
		got, found := series(fams, ck.name, ck.labels)
		switch {
		case !found:
			t.Errorf("%s%v: no series", ck.name, ck.labels)
		case ck.want >= 0 && got != ck.want:
			t.Errorf("%s%v = %v, want %v", ck.name, ck.labels, got, ck.want)
		}
	}
	if _, found := series(fams, "tandem_admin_requests_total", l("method", "GET", "path", "/v1/messages", "code", "200")); !found {
		t.Error("the message list calls are not counted")
	}

	// OpenMetrics carries trace id exemplars on the latency histograms.
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	om, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/openmetrics-text") {
		t.Fatalf("OpenMetrics not offered: %s", resp.Header.Get("Content-Type"))
	}
	ids := map[string]bool{}
	for _, m := range ms {
		full, err := c.Message(context.Background(), m.ID)
		if err != nil || full.TraceID == "" {
			t.Fatalf("message %s has no trace id (%v)", m.ID, err)
		}
		ids[full.TraceID] = true
	}
	for _, name := range []string{"tandem_attempt_duration_seconds_bucket", "tandem_accept_to_delivered_seconds_bucket", "tandem_ingest_duration_seconds_bucket"} {
		re := regexp.MustCompile(`(?m)^` + name + `\{[^}]*route="orders"[^}]*\} \d+ # \{trace_id="([0-9a-f]{32})"\}`)
		found := re.FindAllSubmatch(om, -1)
		if len(found) == 0 {
			t.Errorf("%s has no trace_id exemplar", name)
		}
		for _, f := range found {
			// An ingest refused for its idempotency key has a trace of
			// its own; an attempt is in its message's.
			if !ids[string(f[1])] && name != "tandem_ingest_duration_seconds_bucket" {
				t.Errorf("%s exemplar trace id %s is no message's", name, f[1])
			}
		}
	}

	promtoolCheck(t, raw)

	// The spans went out over OTLP/HTTP (protobuf), flushed at shutdown.
	stopped = true
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	traced := map[string]int{}
	for _, s := range recv.got() {
		traced[s.Name]++
	}
	if traced["ingest orders"] != 4 || traced["attempt a"] != 3 || traced["attempt b"] != 3 || traced["attempt one"] != 2 {
		t.Errorf("spans received over OTLP/HTTP: %v", traced)
	}
}

// promtoolCheck runs `promtool check metrics` (Debian's prometheus
// package) on an exposition: it must find nothing to warn about. Without
// promtool the check is skipped, except in CI.
func promtoolCheck(t *testing.T, exposition []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("promtool is not installed (apt-get install prometheus): %v", err)
		}
		t.Log("promtool not installed; skipping its check")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
