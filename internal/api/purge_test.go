package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestPurgeDeadLetters: POST /v1/dead-letters/purge takes dead letters out
// by id and by filter; a purged one is cancelled and cannot be replayed;
// bad bodies are 422 problems.
func TestPurgeDeadLetters(t *testing.T) {
	t.Parallel()
	r := newRig(t, "")
	for i := range 3 {
		r.send(t, "/fail", fmt.Sprintf(`{"n":%d}`, i))
	}
	type deadPage struct {
		DeadLetters []deadLetter `json:"dead_letters"`
	}
	var dl deadPage
	waitFor(t, "three dead letters", func() bool {
		r.getJSON(t, "/v1/dead-letters", &dl)
		return len(dl.DeadLetters) == 3
	})
	post := func(body string) (*http.Response, []byte) {
		return r.do(t, "POST", "/v1/dead-letters/purge", []byte(body), map[string]string{"Content-Type": "application/json"})
	}
	first := dl.DeadLetters[2] // the oldest
	resp, b := post(`{"ids":["` + first.ID + `","no-such-id"]}`)
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"purged":1,"ids":["`+first.ID+`"]}` {
		t.Fatalf("purge by id: %d %s", resp.StatusCode, b)
	}
	var m struct {
		Status     string
		Deliveries []struct {
			ID, Status string
			LastError  string `json:"last_error"`
		}
	}
	r.getJSON(t, "/v1/messages/"+first.MessageID, &m)
	for _, d := range m.Deliveries {
		if d.ID == first.ID && (d.Status != "cancelled" || !strings.HasPrefix(d.LastError, "purged: ")) {
			t.Errorf("purged delivery: %+v", d)
		}
	}
	if m.Status != "failed" {
		t.Errorf("message status %s", m.Status)
	}
	resp, b = r.do(t, "POST", "/v1/deliveries/"+first.ID+"/replay", nil, nil)
	httpProblem(t, resp, b, http.StatusConflict)

	resp, b = post(`{"route":"fail","limit":1}`)
	var res purgeResult
	if resp.StatusCode != 200 || json.Unmarshal(b, &res) != nil || res.Purged != 1 {
		t.Fatalf("purge by filter: %d %s", resp.StatusCode, b)
	}
	resp, b = post(`{"all":true}`)
	if resp.StatusCode != 200 || json.Unmarshal(b, &res) != nil || res.Purged != 1 {
		t.Fatalf("purge all: %d %s", resp.StatusCode, b)
	}
	r.getJSON(t, "/v1/dead-letters", &dl)
	if len(dl.DeadLetters) != 0 {
		t.Errorf("dead letters left: %v", dl.DeadLetters)
	}
	for _, bad := range []string{`{}`, `{"ids":["a"],"limit":5}`, `{"all":true,"limit":0}`, `{"id":"a"}`} {
		resp, b := post(bad)
		httpProblem(t, resp, b, http.StatusUnprocessableEntity)
	}
	resp, b = post(`{"ids":`)
	httpProblem(t, resp, b, http.StatusBadRequest)
}
