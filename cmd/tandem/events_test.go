package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestEventsAcrossReplicas runs two `tandem serve` replicas on one
// PostgreSQL database: a client of replica b's event stream sees the
// message that replica a accepted, through to its success; the dashboard
// is served; and a replica shuts down promptly with a stream open.
func TestEventsAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the binary")
	}
	t.Parallel()
	dsn, _ := pgSchema(t)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	defer target.Close()
	cfgPath := writeConfig(t, fmt.Sprintf(`
server: { shutdown_grace: 30s }
store: { driver: postgres, dsn: %q }
log: { format: json, level: info }
targets:
  a: { url: %s/a }
routes:
  - { name: orders, path: /orders, steps: [{ name: a, target: a }] }
`, dsn, target.URL))
	a, b := startServe(t, cfgPath), startServe(t, cfgPath)

	resp, err := http.Get(a.base + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "Overview") {
		t.Fatalf("GET /ui/: %d", resp.StatusCode)
	}

	stream, err := http.Get(b.base + "/v1/events?route=orders")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.StatusCode != 200 {
		t.Fatalf("GET /v1/events: %d", stream.StatusCode)
	}
	type event struct{ kind, data string }
	events := make(chan event, 256)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stream.Body)
		var e event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "" && e.kind != "":
				events <- e
				e = event{}
			case strings.HasPrefix(line, "event: "):
				e.kind = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				e.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	// b's hub follows changes once it has a subscriber; give its change
	// listener a moment to be up before a sends.
	time.Sleep(500 * time.Millisecond)
	code, _, body := postJSON(t, a.base+"/orders", `{"n":1}`)
	if code != http.StatusAccepted {
		t.Fatalf("POST /orders on a: %d %s", code, body)
	}
	var ack struct{ ID string }
	if err := json.Unmarshal(body, &ack); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	deadline := time.After(30 * time.Second)
	for !seen["message succeeded"] {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("b's stream ended; saw %v", seen)
			}
			if !strings.Contains(e.data, ack.ID) {
				continue
			}
			var v struct {
				Status         string
				DeliveryStatus string `json:"delivery_status"`
			}
			_ = json.Unmarshal([]byte(e.data), &v)
			seen[e.kind+" "+v.Status+v.DeliveryStatus] = true
		case <-deadline:
			t.Fatalf("replica b's stream did not show a's message through to success; saw %v", seen)
		}
	}
	for _, want := range []string{"message accepted", "delivery succeeded", "attempt succeeded"} {
		if !seen[want] {
			t.Errorf("b's stream lacks %q; saw %v", want, seen)
		}
	}
	// An open stream does not hold up shutdown for the whole grace.
	start := time.Now()
	b.stop(t, 20*time.Second)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("shutdown with an open stream took %v", d)
	}
	a.stop(t, 20*time.Second)
}
