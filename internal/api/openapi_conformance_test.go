package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// exchange is one request to a real server, and what kind of answer it
// should get.
type exchange struct {
	method, path string
	body         string
	header       map[string]string
	status       int
}

// conformanceData fills r's store: a message that succeeded, one whose
// first step is dead (so its second is skipped: a delivery with no
// response, null), and returns their ids, the dead delivery's and a
// succeeded delivery's.
func conformanceData(t *testing.T, r *rig, auth string) (okID, failID, deadID, doneID string) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	if auth != "" {
		h["Authorization"] = "Bearer " + auth
	}
	post := func(path string) string {
		resp, b := r.do(t, "POST", path, []byte(`{"n":1}`), h)
		if resp.StatusCode >= 300 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
		var a struct{ ID string }
		_ = json.Unmarshal(b, &a)
		return a.ID
	}
	okID = post("/sync")
	failID = post("/fail")
	waitFor(t, "a dead letter", func() bool {
		resp, b := r.do(t, "GET", "/v1/dead-letters", nil, h)
		var l struct {
			DeadLetters []struct{ ID string } `json:"dead_letters"`
		}
		_ = json.Unmarshal(b, &l)
		if resp.StatusCode == 200 && len(l.DeadLetters) > 0 {
			deadID = l.DeadLetters[0].ID
			return true
		}
		return false
	})
	_, b := r.do(t, "GET", "/v1/messages/"+okID, nil, h)
	var md struct {
		Deliveries []struct{ ID string } `json:"deliveries"`
	}
	if err := json.Unmarshal(b, &md); err != nil || len(md.Deliveries) == 0 {
		t.Fatalf("message %s: %s", okID, b)
	}
	return okID, failID, deadID, md.Deliveries[0].ID
}

// adminExchanges reaches every admin endpoint and every kind of answer
// the guard and the error table give.
func adminExchanges(okID, failID, deadID, doneID string) []exchange {
	return []exchange{
		{method: "GET", path: "/v1/messages", status: 200},
		{method: "GET", path: "/v1/messages?status=succeeded&limit=1", status: 200},
		{method: "GET", path: "/v1/messages/" + okID, status: 200},
		{method: "GET", path: "/v1/messages/" + failID, status: 200},
		{method: "GET", path: "/v1/messages/nope", status: 404},
		{method: "GET", path: "/v1/messages?limit=0", status: 422},
		{method: "GET", path: "/v1/messages?cursor=bogus", status: 400},
		{method: "GET", path: "/v1/dead-letters", status: 200},
		{method: "GET", path: "/v1/dead-letters?target=flaky", status: 200},
		{method: "GET", path: "/v1/routes", status: 200},
		{method: "GET", path: "/v1/targets", status: 200},
		{method: "GET", path: "/v1/sources", status: 200},
		{method: "GET", path: "/healthz", status: 200},
		{method: "GET", path: "/readyz", status: 200},
		{method: "GET", path: "/metrics", status: 200},
		{method: "POST", path: "/v1/dead-letters/replay", body: `{"ids":["nope"]}`, status: 200},
		{method: "POST", path: "/v1/dead-letters/replay", body: `{}`, status: 422},
		{method: "POST", path: "/v1/dead-letters/replay", body: `{"all":true}`, header: map[string]string{"Content-Type": "text/plain"}, status: 415},
		{method: "POST", path: "/v1/dead-letters/replay", body: `{"all":true}`, header: map[string]string{"Host": "rebound.example"}, status: 421},
		{method: "POST", path: "/v1/dead-letters/replay", body: `{"all":true}`, header: map[string]string{"Sec-Fetch-Site": "cross-site"}, status: 403},
		{method: "POST", path: "/v1/deliveries/" + deadID + "/replay", body: `{}`, status: 200},
		{method: "POST", path: "/v1/deliveries/" + doneID + "/replay", body: `{}`, status: 409},
		{method: "POST", path: "/v1/deliveries/nope/replay", body: `{}`, status: 404},
		{method: "POST", path: "/v1/dead-letters/purge", body: `{"ids":["nope"]}`, status: 200},
		{method: "POST", path: "/orders", body: `{"a":1}`, header: map[string]string{"Idempotency-Key": "k1"}, status: 202},
		{method: "POST", path: "/orders", body: `{"a":1}`, header: map[string]string{"Idempotency-Key": "k1"}, status: 202},
		{method: "POST", path: "/orders", body: `{"a":2}`, header: map[string]string{"Idempotency-Key": "k1"}, status: 422},
		{method: "POST", path: "/orders", body: `{"a":`, status: 400},
		{method: "POST", path: "/sync", body: `{"a":1}`, status: 200},
	}
}

// TestOpenAPIAnswersConform validates real answers of every admin
// endpoint, and of routes, against /openapi.json with kin-openapi's
// openapi3filter (an independent OpenAPI 3.1 implementation): requests
// and responses, bodies, status codes and headers.
func TestOpenAPIAnswersConform(t *testing.T) {
	t.Parallel()
	hash := func(k string) string { s := sha256.Sum256([]byte(k)); return "sha256:" + hex.EncodeToString(s[:]) }
	for _, keys := range []bool{false, true} {
		t.Run(fmt.Sprintf("keys=%v", keys), func(t *testing.T) {
			t.Parallel()
			extra, auth := "", ""
			if keys {
				extra = fmt.Sprintf("auth:\n  keys:\n    - { name: ops, hash: %q, scopes: [admin] }\n", hash("ops-key"))
				auth = "ops-key"
			}
			r := newRig(t, extra)
			okID, failID, deadID, doneID := conformanceData(t, r, auth)
			doc, router := loadDocument(t, r, auth)
			_ = doc
			xs := adminExchanges(okID, failID, deadID, doneID)
			xs = append(xs, exchange{method: "DELETE", path: "/v1/messages", status: 405})
			if keys {
				xs = append(xs,
					exchange{method: "GET", path: "/v1/messages", header: map[string]string{"Authorization": ""}, status: 401},
					exchange{method: "GET", path: "/v1/targets", header: map[string]string{"Authorization": "Bearer wrong"}, status: 401},
					exchange{method: "POST", path: "/orders", body: `{}`, header: map[string]string{"Authorization": ""}, status: 401},
				)
			}
			for _, x := range xs {
				checkExchange(t, r, router, x, auth)
			}
		})
	}
}

// loadDocument fetches /openapi.json from r and loads it with kin-openapi.
func loadDocument(t *testing.T, r *rig, auth string) (*openapi3.T, routers.Router) {
	t.Helper()
	h := map[string]string{}
	if auth != "" {
		h["Authorization"] = "Bearer " + auth
	}
	resp, b := r.do(t, "GET", "/openapi.json", nil, h)
	if resp.StatusCode != 200 {
		t.Fatalf("openapi.json: %d %s", resp.StatusCode, b)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document is not valid OpenAPI: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// checkExchange sends x and validates the request and the answer.
func checkExchange(t *testing.T, r *rig, router routers.Router, x exchange, auth string) {
	t.Helper()
	name := x.method + " " + x.path + " " + fmt.Sprint(x.status)
	req, err := http.NewRequest(x.method, r.srv.URL+x.path, strings.NewReader(x.body))
	if err != nil {
		t.Fatal(err)
	}
	if x.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for k, v := range x.header {
		switch {
		case k == "Host":
			req.Host = v
		case v == "":
			req.Header.Del(k)
		default:
			req.Header.Set(k, v)
		}
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != x.status {
		t.Errorf("%s: got %d %s", name, resp.StatusCode, body)
		return
	}
	// The router finds the operation by the document's server (this
	// server), whatever Host the request claimed.
	probe := req.Clone(context.Background())
	probe.Host = req.URL.Host
	probe.Body = io.NopCloser(strings.NewReader(x.body))
	route, params, err := router.FindRoute(probe)
	if err != nil {
		if x.status == http.StatusMethodNotAllowed {
			return // no operation: the 405 is declared as a component answer
		}
		t.Errorf("%s: no operation in the document: %v", name, err)
		return
	}
	in := &openapi3filter.RequestValidationInput{
		Request: probe, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true},
	}
	if x.status < 400 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s: the request does not match the document: %v", name, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: in.Options}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s: the answer does not match the document: %v\n%s", name, err, bytes.TrimSpace(body))
	}
}
