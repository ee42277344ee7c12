package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

const strategiesYAML = `
auth:
  keys:
    - { name: a, hash: %q, scopes: [admin] }
    - { name: b, hash: %q, scopes: ["ingest:*"] }
targets:
  lying:
    url: %q
    contract: { openapi: %q, operation: createCharge }
  read: { url: %q, method: GET }
routes:
  - name: pay
    path: /pay
    steps:
      - { name: charge, target: lying, body: { amount: 1, currency: EUR } }
  - name: read
    path: /read
    method: GET
    respond: all
    durable: false
    cache: { ttl: 1m }
    steps:
      - { name: r, target: read }
`

// strategyRig serves a target that breaks its contract (it answers 200,
// which the sample document does not declare) and a cached read route.
func strategyRig(t *testing.T) (*rig, *testTarget, *testTarget) {
	t.Helper()
	lying, read := newTestTarget(t, 200), newTestTarget(t, 200)
	doc, _ := filepath.Abs(filepath.Join("..", "..", "examples", "sampleapi", "openapi.yaml"))
	cfg, err := config.Parse([]byte(fmt.Sprintf(strategiesYAML, keyHash("key-a"), keyHash("key-b"), lying.srv.URL, doc, read.srv.URL)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), sqlite.Config{DSN: filepath.Join(t.TempDir(), "s.db"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: quietLogger(), PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Engine: eng, Logger: quietLogger(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{eng: eng, store: st, handler: h, srv: httptest.NewServer(h)}
	t.Cleanup(func() {
		r.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(ctx)
		_ = st.Close()
	})
	return r, lying, read
}

// TestContractViolationInMessageDetail: an answer that breaks the
// target's contract is flagged in GET /v1/messages/{id}.
func TestContractViolationInMessageDetail(t *testing.T) {
	t.Parallel()
	r, _, _ := strategyRig(t)
	resp, b := r.do(t, "POST", "/pay", []byte(`{}`), map[string]string{"Content-Type": "application/json", "Authorization": "Bearer key-b"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var a engine.MessageAnswer
	_ = json.Unmarshal(b, &a)
	var m struct {
		Status     string
		Deliveries []struct {
			Status   string
			Attempts []struct {
				HTTPStatus int    `json:"http_status"`
				Outcome    string `json:"outcome"`
				Error      string `json:"error"`
			}
		}
	}
	waitFor(t, "the message to succeed", func() bool {
		resp, b := r.do(t, "GET", "/v1/messages/"+a.ID, nil, map[string]string{"Authorization": "Bearer key-a"})
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		_ = json.Unmarshal(b, &m)
		return m.Status == "succeeded"
	})
	att := m.Deliveries[0].Attempts
	if len(att) != 1 || att[0].HTTPStatus != 200 || !strings.HasPrefix(att[0].Error, "contract: response breaks the contract: status 200 is not declared") {
		t.Errorf("attempts %+v: want the violation flagged on the succeeded attempt", att)
	}
}

// TestCacheKeepsCallersApartOverHTTP: answers are cached per credential;
// the answer says hit or miss.
func TestCacheKeepsCallersApartOverHTTP(t *testing.T) {
	t.Parallel()
	r, _, read := strategyRig(t)
	call := func(key string) string {
		resp, b := r.do(t, "GET", "/read?x=1", nil, map[string]string{"Authorization": "Bearer " + key})
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		return resp.Header.Get("Tandem-Cache")
	}
	if got := call("key-a"); got != "miss" {
		t.Errorf("first a: %s", got)
	}
	if got := call("key-b"); got != "miss" {
		t.Errorf("first b: %s (callers with other credentials shared an answer)", got)
	}
	if got := call("key-a"); got != "hit" {
		t.Errorf("second a: %s", got)
	}
	if read.calls.Load() != 2 {
		t.Errorf("target called %d times, want 2", read.calls.Load())
	}
}
