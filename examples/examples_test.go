package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandem-run/tandem/examples/sampleapi"
	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// gateway is one example running end to end: its sample services on
// loopback, the engine over a real SQLite store, and the HTTP API.
type gateway struct {
	url      string
	services map[string]*sampleapi.Service
	servers  map[string]*httptest.Server // by env, as services
	client   *http.Client
}

// startExample runs examples/<name>.yaml against its sample services. It
// sets environment variables, so its callers do not run in parallel.
func startExample(t *testing.T, name string) *gateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	svcs, err := sampleapi.Example(name)
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]*httptest.Server{}
	for env, s := range svcs {
		srv := httptest.NewServer(s)
		servers[env] = srv
		t.Cleanup(srv.Close)
		t.Cleanup(s.Release) // a held service must not block srv.Close
		t.Setenv(env, srv.URL)
	}
	cfg, err := config.Load(name + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: filepath.Join(t.TempDir(), name+".db"), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Config: cfg, Store: st, Logger: logger, PollInterval: 10 * time.Millisecond, WaitPoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Options{Engine: eng, Logger: logger, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(h)
	t.Cleanup(func() {
		gw.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(sctx)
		_ = st.Close()
	})
	return &gateway{url: gw.URL, services: svcs, servers: servers, client: &http.Client{Timeout: 20 * time.Second}}
}

func (g *gateway) post(t *testing.T, path, body string) (int, []byte) {
	t.Helper()
	resp, err := g.client.Post(g.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// message is the part of GET /v1/messages/{id} the tests read.
type message struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Deliveries []struct {
		Step         string `json:"step"`
		Status       string `json:"status"`
		LastError    string `json:"last_error"`
		Compensates  string `json:"compensates"`
		Compensation string `json:"compensation"`
	} `json:"deliveries"`
	Timeline []struct {
		Step   string `json:"step"`
		Event  string `json:"event"`
		Detail string `json:"detail"`
	} `json:"timeline"`
}

func (m *message) steps() []string {
	var out []string
	for _, d := range m.Deliveries {
		out = append(out, d.Step+"="+d.Status)
	}
	return out
}

// waitMessage polls the admin API until the message's status is one of
// want, and returns it.
func (g *gateway) waitMessage(t *testing.T, id string, want ...string) *message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := g.client.Get(g.url + "/v1/messages/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var m message
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(want, m.Status) {
			return &m
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s is %s, want %v; deliveries %+v", id, m.Status, want, m.Deliveries)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestOrderExample(t *testing.T) {
	g := startExample(t, "order")
	payments, inventory := g.services["PAYMENTS_URL"], g.services["INVENTORY_URL"]

	t.Run("in stock: charged and reserved, nothing refunded", func(t *testing.T) {
		code, b := g.post(t, "/orders", `{"total": 59.5, "customer": "c-1", "items": [{"sku": "tent", "qty": 1}]}`)
		if code != http.StatusAccepted {
			t.Fatalf("code %d: %s", code, b)
		}
		var a struct{ ID string }
		decode(t, b, &a)
		m := g.waitMessage(t, a.ID, "succeeded", "failed", "compensated", "partially_succeeded")
		if m.Status != "succeeded" {
			t.Fatalf("status %s: %+v", m.Status, m.Deliveries)
		}
		want := []string{"charge=succeeded", "reserve=succeeded", "charge.compensate=cancelled"}
		if !slices.Equal(m.steps(), want) {
			t.Errorf("deliveries %v, want %v", m.steps(), want)
		}
		charges := payments.Calls("/charges")
		var charge struct {
			Amount   float64
			Currency string
			Order    string
		}
		decode(t, charges[len(charges)-1].Body, &charge)
		if charge.Amount != 59.5 || charge.Currency != "EUR" || charge.Order != a.ID {
			t.Errorf("charge request %s", charges[len(charges)-1].Body)
		}
		if n := len(payments.Calls("/refunds")); n != 0 {
			t.Errorf("%d refunds for an order in stock", n)
		}
	})

	t.Run("out of stock: the charge is refunded with its id", func(t *testing.T) {
		code, b := g.post(t, "/orders", `{"total": 120, "currency": "USD", "customer": "c-2", "items": [{"sku": "kayak", "qty": 1}]}`)
		if code != http.StatusAccepted {
			t.Fatalf("code %d: %s", code, b)
		}
		var a struct{ ID string }
		decode(t, b, &a)
		m := g.waitMessage(t, a.ID, "compensated", "failed", "succeeded")
		if m.Status != "compensated" {
			t.Fatalf("status %s: %+v", m.Status, m.Deliveries)
		}
		want := []string{"charge=compensated", "reserve=dead", "charge.compensate=succeeded"}
		if !slices.Equal(m.steps(), want) {
			t.Errorf("deliveries %v, want %v", m.steps(), want)
		}
		if m.Deliveries[0].Compensation != "charge.compensate" || m.Deliveries[2].Compensates != "charge" {
			t.Errorf("compensation links: %+v", m.Deliveries)
		}
		// The refund carries the id the payments API gave the charge.
		var charge struct{ ID string }
		decode(t, chargeAnswer(t, payments.Calls("/charges"), a.ID), &charge)
		refunds := payments.Calls("/refunds")
		if len(refunds) != 1 {
			t.Fatalf("%d refunds, want 1", len(refunds))
		}
		var refund struct {
			Charge string
			Amount float64
			Reason string
		}
		decode(t, refunds[0].Body, &refund)
		if refund.Charge == "" || refund.Charge != charge.ID || refund.Amount != 120 || !strings.Contains(refund.Reason, a.ID) {
			t.Errorf("refund %s, charge %s", refunds[0].Body, charge.ID)
		}
		if k := refunds[0].Header.Get("Idempotency-Key"); k != a.ID+".charge.compensate" {
			t.Errorf("refund Idempotency-Key %q", k)
		}
		reservations := inventory.Calls("/reservations")
		var res struct{ Charge string }
		decode(t, reservations[len(reservations)-1].Body, &res)
		if res.Charge != charge.ID {
			t.Errorf("reservation request %s, want charge %s", reservations[len(reservations)-1].Body, charge.ID)
		}
		// The timeline tells the story in order.
		var story []string
		for _, e := range m.Timeline {
			story = append(story, e.Step+":"+e.Event)
		}
		wantStory := []string{"charge:attempt", "reserve:attempt", "reserve:dead", "charge.compensate:attempt", "charge:compensated"}
		if !slices.Equal(story, wantStory) {
			t.Errorf("timeline %v, want %v", story, wantStory)
		}
	})
}

func TestOrderExampleMissingField(t *testing.T) {
	g := startExample(t, "order")
	payments := g.services["PAYMENTS_URL"]
	// No total: the charge's template cannot be rendered for this message.
	code, b := g.post(t, "/orders", `{"customer": "c-3", "items": [{"sku": "tent"}]}`)
	if code != http.StatusAccepted {
		t.Fatalf("code %d: %s", code, b)
	}
	var a struct{ ID string }
	decode(t, b, &a)
	m := g.waitMessage(t, a.ID, "failed", "compensated", "succeeded")
	if m.Status != "failed" {
		t.Fatalf("status %s: %+v", m.Status, m.Deliveries)
	}
	charge := m.Deliveries[0]
	if charge.Step != "charge" || charge.Status != "dead" || !strings.Contains(charge.LastError, "request.body.total is missing") {
		t.Errorf("charge %+v", charge)
	}
	if got := m.steps(); !slices.Equal(got[1:], []string{"reserve=skipped", "charge.compensate=cancelled"}) {
		t.Errorf("deliveries %v", got)
	}
	if n := len(payments.Calls("/")); n != 0 {
		t.Errorf("payments got %d calls", n)
	}
}

// chargeAnswer returns the payments API's answer to the charge of
// message id.
func chargeAnswer(t *testing.T, calls []sampleapi.Call, id string) []byte {
	t.Helper()
	for _, c := range calls {
		var in struct{ Order string }
		if c.JSON(&in) == nil && in.Order == id {
			return c.Answer
		}
	}
	t.Fatalf("no charge for message %s", id)
	return nil
}

func TestRegistrationExample(t *testing.T) {
	g := startExample(t, "registration")
	email, crm := g.services["EMAIL_URL"], g.services["CRM_URL"]
	email.Hold() // the mail service answers only when the test lets it

	code, b := g.post(t, "/users", `{"email": "Ann@Example.com", "name": "Ann", "plan": "pro"}`)
	if code != http.StatusCreated {
		t.Fatalf("code %d: %s", code, b)
	}
	var ans struct {
		User struct {
			ID, Email, Name string
		}
		Message string
	}
	decode(t, b, &ans)
	if ans.User.ID == "" || ans.User.Email != "ann@example.com" || ans.Message == "" {
		t.Fatalf("answer %s", b)
	}
	// The caller has its answer while the email is still held; the CRM
	// update ran in parallel with the (held) email.
	ctx := waitCtx(t)
	contacts, err := crm.WaitCalls(ctx, "/contacts", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := email.Calls("/messages"); len(got) != 0 {
		t.Fatalf("email answered before release: %d calls", len(got))
	}
	var contact struct {
		ExternalID string `json:"external_id"`
		Email      string
		Plan       string
	}
	decode(t, contacts[0].Body, &contact)
	if contact.ExternalID != ans.User.ID || contact.Email != "ann@example.com" || contact.Plan != "pro" {
		t.Errorf("crm request %s", contacts[0].Body)
	}
	if contacts[0].Header.Get("X-Source") != "signup" {
		t.Errorf("crm header X-Source %q", contacts[0].Header.Get("X-Source"))
	}

	email.Release()
	m := g.waitMessage(t, ans.Message, "succeeded", "partially_succeeded", "failed")
	if m.Status != "succeeded" {
		t.Fatalf("status %s: %+v", m.Status, m.Deliveries)
	}
	mails := email.Calls("/messages")
	if len(mails) != 1 {
		t.Fatalf("%d emails", len(mails))
	}
	var mail struct{ To, Subject, User string }
	decode(t, mails[0].Body, &mail)
	if mail.To != "ann@example.com" || mail.Subject != "Welcome, Ann!" || mail.User != ans.User.ID {
		t.Errorf("email request %s", mails[0].Body)
	}

	t.Run("a taken email passes the users API's answer through", func(t *testing.T) {
		code, b := g.post(t, "/users", `{"email": "ann@example.com", "name": "Ann again"}`)
		if code != http.StatusConflict {
			t.Fatalf("code %d: %s", code, b)
		}
		if !bytes.Contains(b, []byte("already registered")) {
			t.Errorf("answer %s", b)
		}
	})
}

func TestPublishingExample(t *testing.T) {
	g := startExample(t, "publishing")
	articles, search, subscribers := g.services["ARTICLES_URL"], g.services["SEARCH_URL"], g.services["SUBSCRIBERS_URL"]

	// A title that tries to break out of its JSON string stays a string.
	title := `Go "tips"}, "admin": {"x": 1`
	in, _ := json.Marshal(map[string]any{"title": title, "text": "Use the race detector.", "topic": "go", "tags": []string{"go", "testing"}})
	code, b := g.post(t, "/articles", string(in))
	if code != http.StatusCreated {
		t.Fatalf("code %d: %s", code, b)
	}
	var ans struct{ ID, URL string }
	decode(t, b, &ans)
	if ans.ID != "art_1" || !strings.HasPrefix(ans.URL, "https://blog.example/1-go-tips") {
		t.Fatalf("answer %s", b)
	}
	// The article service got the inbound body unchanged.
	stored := articles.Calls("/articles")
	if len(stored) != 1 || !bytes.Equal(stored[0].Body, in) {
		t.Fatalf("articles got %q, want %q", stored[0].Body, in)
	}

	ctx := waitCtx(t)
	indexed, err := search.WaitCalls(ctx, "/index/articles/", 1)
	if err != nil {
		t.Fatal(err)
	}
	if indexed[0].Method != http.MethodPut || indexed[0].Path != "/index/articles/art_1" {
		t.Errorf("search call %s %s", indexed[0].Method, indexed[0].Path)
	}
	var doc map[string]any
	decode(t, indexed[0].Body, &doc)
	if doc["title"] != title || len(doc) != 4 || doc["url"] != ans.URL {
		t.Errorf("search document %s", indexed[0].Body)
	}
	if tags, _ := doc["tags"].([]any); len(tags) != 2 {
		t.Errorf("tags %v", doc["tags"])
	}
	notes, err := subscribers.WaitCalls(ctx, "/notifications", 1)
	if err != nil {
		t.Fatal(err)
	}
	n := notes[0]
	if n.Query != "topic=go" || n.Header.Get("X-Article-Id") != "art_1" || !strings.HasPrefix(n.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("notification %s?%s headers %v", n.Path, n.Query, n.Header)
	}
	if string(n.Body) != "New on the blog: "+title+" "+ans.URL {
		t.Errorf("notification body %q", n.Body)
	}
}
