package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/events"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// newEventsRig is newRig with a live event hub: the engine writes through
// the hub's store wrapper and the API serves the event streams.
func newEventsRig(t testing.TB, extra string, hubOpts events.Options, esOpts EventStreamOptions) (*rig, *events.Hub) {
	t.Helper()
	ok := newTestTarget(t, 200)
	flaky := newTestTarget(t, 400)
	cfg, err := config.Parse([]byte(fmt.Sprintf(rigYAML, ok.srv.URL, flaky.srv.URL, extra)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), "api.db"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	hubOpts.Store, hubOpts.Logger = st, quietLogger()
	hub := events.New(hubOpts)
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); hub.Run(ctx) }()
	eng, err := engine.New(engine.Options{Config: cfg, Store: hub.Wrap(st), Logger: quietLogger(), PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	esOpts.Hub, esOpts.Store, esOpts.Logger = hub, st, quietLogger()
	h, err := New(Options{Engine: eng, Logger: quietLogger(), Version: "test", Events: NewEventStream(esOpts)})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{eng: eng, store: st, handler: h, ok: ok, flaky: flaky}
	r.srv = httptest.NewUnstartedServer(h)
	if esOpts.WriteTimeout > 0 && esOpts.WriteTimeout < time.Second {
		// A test of slow clients: small server-side socket buffers, so a
		// client that stops reading holds up writes soon.
		r.srv.Listener = smallBuffers{r.srv.Listener}
	}
	r.srv.Start()
	t.Cleanup(func() {
		hub.Close()
		r.srv.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = eng.Shutdown(sctx)
		cancel()
		<-hubDone
		_ = st.Close()
	})
	return r, hub
}

// smallBuffers gives every accepted connection a 4 KiB send buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// sseEvent is one event as read off the wire.
type sseEvent struct {
	id, kind, data string
	comment        string // a comment line (heartbeat), when that is what came
}

// sseStream reads events off an open stream.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
}

// openStream GETs path with header and reads its events in the background.
func openStream(t testing.TB, r *rig, path string, header map[string]string) *sseStream {
	t.Helper()
	req, err := http.NewRequest("GET", r.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 1024)}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		return s
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.kind != "" || e.comment != "" {
					s.events <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, ":"):
				e.comment = strings.TrimSpace(line[1:])
			default:
				k, v, _ := strings.Cut(line, ": ")
				switch k {
				case "id":
					e.id = v
				case "event":
					e.kind = v
				case "data":
					e.data = v
				}
			}
		}
	}()
	return s
}

// next returns the next event (not a comment), waiting at most 10s.
func (s *sseStream) next(t testing.TB) sseEvent {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				t.Fatal("the stream ended")
			}
			if e.kind != "" {
				return e
			}
		case <-timer.C:
			t.Fatal("no event within 10s")
		}
	}
}

// until returns the events up to and including the first that done says
// is the last.
func (s *sseStream) until(t testing.TB, done func(sseEvent) bool) []sseEvent {
	t.Helper()
	var out []sseEvent
	for {
		e := s.next(t)
		out = append(out, e)
		if done(e) {
			return out
		}
	}
}

func messageIs(id, status string) func(sseEvent) bool {
	return func(e sseEvent) bool {
		if e.kind != "message" {
			return false
		}
		var m tapi.MessageSummary
		return json.Unmarshal([]byte(e.data), &m) == nil && m.ID == id && m.Status == status
	}
}

func TestEventsFollowAMessage(t *testing.T) {
	t.Parallel()
	r, _ := newEventsRig(t, "", events.Options{}, EventStreamOptions{})
	s := openStream(t, r, "/v1/events", nil)
	id := r.send(t, "/orders", `{"n":1}`)
	evs := s.until(t, messageIs(id, "succeeded"))
	var sawAttempt, sawSucceeded bool
	var first tapi.MessageSummary
	if evs[0].kind != "message" || json.Unmarshal([]byte(evs[0].data), &first) != nil || first.Status != "accepted" || first.Route != "orders" {
		t.Errorf("first event %+v: want the message accepted", evs[0])
	}
	for _, e := range evs {
		if e.id == "" || !strings.Contains(e.id, "-") {
			t.Errorf("event %+v has no id", e)
		}
		switch e.kind {
		case "attempt":
			var a tapi.AttemptEvent
			if err := json.Unmarshal([]byte(e.data), &a); err != nil {
				t.Fatal(err)
			}
			sawAttempt = a.MessageID == id && a.Step == "charge" && a.Target == "ok" && a.N == 1 && a.HTTPStatus == 200 && a.Outcome == "success"
		case "delivery":
			var d tapi.DeliveryEvent
			if err := json.Unmarshal([]byte(e.data), &d); err != nil {
				t.Fatal(err)
			}
			if d.MessageID != id || d.Route != "orders" || d.Step != "charge" || d.ID == "" {
				t.Errorf("delivery event %s", e.data)
			}
			if d.Status == "succeeded" {
				sawSucceeded = len(d.Attempts) == 1
			}
		}
	}
	if !sawAttempt || !sawSucceeded {
		t.Errorf("attempt seen %v, delivery succeeded (with its attempt) %v; events %+v", sawAttempt, sawSucceeded, evs)
	}
}

func TestEventsFiltersAndMessageStream(t *testing.T) {
	t.Parallel()
	r, _ := newEventsRig(t, "", events.Options{}, EventStreamOptions{})
	dead := openStream(t, r, "/v1/events?route=fail&status=dead", nil)
	okID := r.send(t, "/orders", `{}`)
	one := openStream(t, r, "/v1/messages/"+okID+"/events", nil)
	failID := r.send(t, "/fail", `{}`)
	// Only the dead delivery of /fail (its attempt, then the delivery).
	e := dead.next(t)
	var a tapi.AttemptEvent
	if e.kind != "attempt" || json.Unmarshal([]byte(e.data), &a) != nil || a.MessageID != failID || a.DeliveryStatus != "dead" || a.HTTPStatus != 400 {
		t.Fatalf("first filtered event %+v", e)
	}
	e = dead.next(t)
	var d tapi.DeliveryEvent
	if e.kind != "delivery" || json.Unmarshal([]byte(e.data), &d) != nil || d.Step != "first" || d.Status != "dead" || d.LastError == "" {
		t.Fatalf("second filtered event %+v", e)
	}
	// The message stream sees its own message only.
	for _, e := range one.until(t, messageIs(okID, "succeeded")) {
		if !strings.Contains(e.data, okID) {
			t.Errorf("message stream of %s got %s", okID, e.data)
		}
	}
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/v1/events?status=nope", 422},
		{"/v1/events?route=" + strings.Repeat("r", 300), 422},
		{"/v1/messages/nope/events", 404},
		{"/v1/messages/" + okID + "/events?status=lost", 422},
	} {
		resp, b := r.do(t, "GET", c.path, nil, nil)
		httpProblem(t, resp, b, c.status)
	}
}

func TestEventsResumeAndHeartbeat(t *testing.T) {
	t.Parallel()
	r, hub := newEventsRig(t, "", events.Options{Buffer: 64}, EventStreamOptions{Heartbeat: 20 * time.Millisecond})
	s := openStream(t, r, "/v1/events", nil)
	id := r.send(t, "/orders", `{}`)
	evs := s.until(t, messageIs(id, "succeeded"))
	// Heartbeats are comment lines.
	deadline := time.After(10 * time.Second)
	for beat := false; !beat; {
		select {
		case e := <-s.events:
			beat = e.comment == "heartbeat"
		case <-deadline:
			t.Fatal("no heartbeat")
		}
	}
	s.resp.Body.Close()
	// Resume after the first event: the rest, exactly once, in order.
	again := openStream(t, r, "/v1/events", map[string]string{"Last-Event-ID": evs[0].id})
	for _, want := range evs[1:] {
		if got := again.next(t); got.id != want.id || got.data != want.data {
			t.Fatalf("resumed %+v, want %+v", got, want)
		}
	}
	// The query parameter does the same, for a first connection.
	q := openStream(t, r, "/v1/events?last_event_id="+evs[len(evs)-2].id, nil)
	if got := q.next(t); got.id != evs[len(evs)-1].id {
		t.Fatalf("resumed by query: %+v", got)
	}
	// An id from another run: a reset, with an id to go on from.
	other := openStream(t, r, "/v1/events", map[string]string{"Last-Event-ID": "0123456789ab-7"})
	e := other.next(t)
	var reset tapi.ResetEvent
	if e.kind != "reset" || json.Unmarshal([]byte(e.data), &reset) != nil || reset.Reason != "unknown_id" || e.id != hub.LastID() {
		t.Fatalf("stale id: %+v, want a reset", e)
	}
}

func TestEventsAuth(t *testing.T) {
	t.Parallel()
	r, _ := newEventsRig(t, `
auth:
  keys:
    - { name: ops, hash: "`+keyHash("admin-key")+`", scopes: [admin] }
    - { name: shop, hash: "`+keyHash("shop-key")+`", scopes: ["ingest:*"] }
`, events.Options{}, EventStreamOptions{})
	for _, c := range []struct {
		key    string
		status int
	}{{"", 401}, {"wrong", 401}, {"shop-key", 403}} {
		h := map[string]string{}
		if c.key != "" {
			h["Authorization"] = "Bearer " + c.key
		}
		resp, b := r.do(t, "GET", "/v1/events", nil, h)
		httpProblem(t, resp, b, c.status)
	}
	s := openStream(t, r, "/v1/events", map[string]string{"Authorization": "Bearer admin-key"})
	if s.resp.StatusCode != 200 {
		t.Fatalf("admin key: %d", s.resp.StatusCode)
	}
}

// TestEventsSlowClientIsDropped connects a client that never reads, with
// a tiny receive buffer, and sends messages: the engine delivers them all
// without waiting, and the server cuts the client off.
func TestEventsSlowClientIsDropped(t *testing.T) {
	t.Parallel()
	r, hub := newEventsRig(t, "", events.Options{ClientBuffer: 64}, EventStreamOptions{WriteTimeout: 200 * time.Millisecond})
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", r.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream to be up", func() bool { return strings.Contains(hub.LastID(), "-") })
	// A reader that keeps up, beside the stuck one.
	watch := openStream(t, r, "/v1/events", nil)
	var last string
	for range 100 {
		last = r.send(t, "/orders", `{"pad":"`+strings.Repeat("x", 200)+`"}`)
	}
	watch.until(t, messageIs(last, "succeeded"))
	waitFor(t, "every message to succeed", func() bool {
		var m tapi.MessageDetail
		r.getJSON(t, "/v1/messages/"+last, &m)
		return m.Status == "succeeded"
	})
	// The stuck client is cut off: reading now, it comes to the end.
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("the stuck client was not cut off: %v", err)
	}
	if hub.Dropped() < 1 {
		t.Logf("cut off by the write timeout before its buffer filled")
	}
}

func TestEventsInOpenAPI(t *testing.T) {
	t.Parallel()
	r, _ := newEventsRig(t, "", events.Options{}, EventStreamOptions{})
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Responses   map[string]struct {
				Content map[string]json.RawMessage `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	r.getJSON(t, "/openapi.json", &doc)
	for path, id := range map[string]string{"/v1/events": "stream-events", "/v1/messages/{id}/events": "stream-message-events"} {
		op, ok := doc.Paths[path]["get"]
		if !ok || op.OperationID != id {
			t.Errorf("openapi: no GET %s (%s)", path, id)
			continue
		}
		if _, ok := op.Responses["200"].Content["text/event-stream"]; !ok {
			t.Errorf("openapi: GET %s has no text/event-stream answer", path)
		}
	}
}

func TestListMessagesByKeyAndTime(t *testing.T) {
	t.Parallel()
	r, _ := newEventsRig(t, "", events.Options{}, EventStreamOptions{})
	before := time.Now().UTC().Add(-time.Second)
	resp, b := r.do(t, "POST", "/orders", []byte(`{}`), map[string]string{"Content-Type": "application/json", "Idempotency-Key": "k-1"})
	if resp.StatusCode != 202 {
		t.Fatalf("POST: %d %s", resp.StatusCode, b)
	}
	var ack engine.MessageAnswer
	_ = json.Unmarshal(b, &ack)
	other := r.send(t, "/orders", `{}`)
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"idempotency_key=k-1", []string{ack.ID}},
		{"idempotency_key=nope", nil},
		{"created_from=" + before.Format(time.RFC3339Nano), []string{other, ack.ID}},
		{"created_before=" + before.Format(time.RFC3339Nano), nil},
	} {
		var l tapi.MessageList
		r.getJSON(t, "/v1/messages?"+c.query, &l)
		var got []string
		for _, m := range l.Messages {
			got = append(got, m.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("?%s: %v, want %v", c.query, got, c.want)
		}
	}
	resp, b = r.do(t, "GET", "/v1/messages?created_from=yesterday", nil, nil)
	httpProblem(t, resp, b, 422)
}
