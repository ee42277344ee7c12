package ui

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// client is a browser-like HTTP client: a cookie jar, no redirects followed.
func client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// csrfOf takes the CSRF token out of a page.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	_, rest, ok := strings.Cut(page, `name="csrf" value="`)
	if !ok {
		t.Fatalf("no csrf token in page")
	}
	tok, _, _ := strings.Cut(rest, `"`)
	return tok
}

func TestPagesRenderWithoutKeys(t *testing.T) {
	s := newStack(t, false)
	dead := s.send(t, "/orders", `{"total": 3, "password": "hunter2"}`)
	waitFor(t, "a dead letter", func() bool { return s.messageStatus(t, dead) == "partially_succeeded" })
	saga := s.send(t, "/place-order", `{}`, "Idempotency-Key", "key-77",
		"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	waitFor(t, "the saga", func() bool { return s.messageStatus(t, saga) == "succeeded" })
	c := client(t)
	for _, c2 := range []struct{ path, want string }{
		{"/ui/", "Overview"},
		{"/ui/messages", dead},
		{"/ui/messages?status=succeeded", saga},
		{"/ui/messages?q=key-77", saga},
		{"/ui/messages?q=" + dead, dead},
		{"/ui/messages?route=orders&from=2000-01-01T00:00", dead},
		{"/ui/messages/" + dead, "ship"},
		{"/ui/messages/" + saga, "charge.compensate"},
		{"/ui/messages/" + saga, `<a href="http://127.0.0.1:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736" rel="noopener">4bf92f3577b34da6a3ce929d0e0e4736</a>`},
		{"/ui/dead-letters", "Replay selected"},
		{"/ui/targets", "shipping"},
	} {
		resp, body := get(t, c, s.srv.URL+c2.path)
		if resp.StatusCode != 200 || !strings.Contains(body, c2.want) {
			t.Errorf("GET %s: %d, want 200 with %q", c2.path, resp.StatusCode, c2.want)
		}
		if strings.Contains(body, "hunter2") || strings.Contains(body, "s3cr3t-token") {
			t.Errorf("GET %s shows a secret", c2.path)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", c2.path, csp)
		}
	}
	for _, c2 := range []struct {
		path   string
		status int
	}{
		{"/ui/messages/nope", 404},
		{"/ui/nope", 404},
		{"/ui/messages?status=bogus", 400},
		{"/ui/messages?from=yesterday", 400},
		{"/ui/messages?cursor=zzz", 400},
	} {
		if resp, _ := get(t, c, s.srv.URL+c2.path); resp.StatusCode != c2.status {
			t.Errorf("GET %s: %d, want %d", c2.path, resp.StatusCode, c2.status)
		}
	}
	// /ui goes to /ui/; the static files are served.
	if resp, _ := get(t, c, s.srv.URL+"/ui"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := get(t, c, s.srv.URL+"/ui/static/app.js"); resp.StatusCode != 200 || !strings.Contains(body, "EventSource") {
		t.Errorf("GET app.js: %d", resp.StatusCode)
	}
	// A POST without the CSRF token changes nothing.
	_, page := get(t, c, s.srv.URL+"/ui/dead-letters")
	ids := deadIDs(t, s)
	if resp, _ := post(t, c, s.srv.URL+"/ui/dead-letters/purge", url.Values{"id": ids}); resp.StatusCode != 403 {
		t.Errorf("purge without csrf: %d, want 403", resp.StatusCode)
	}
	if resp, _ := post(t, c, s.srv.URL+"/ui/dead-letters/purge", url.Values{"id": ids, "csrf": {"forged"}}); resp.StatusCode != 403 {
		t.Errorf("purge with a forged csrf: %d, want 403", resp.StatusCode)
	}
	if len(deadIDs(t, s)) != 1 {
		t.Fatal("a refused purge changed the dead letters")
	}
	// With it: confirm, then purge, with the counts.
	tok := csrfOf(t, page)
	resp, body := post(t, c, s.srv.URL+"/ui/dead-letters/confirm", url.Values{"id": ids, "csrf": {tok}, "action": {"purge"}})
	if resp.StatusCode != 200 || !strings.Contains(body, "Purge 1") {
		t.Fatalf("confirm: %d %s", resp.StatusCode, body)
	}
	resp, body = post(t, c, s.srv.URL+"/ui/dead-letters/purge", url.Values{"id": append(ids, "not-a-delivery"), "csrf": {tok}})
	if resp.StatusCode != 200 || !strings.Contains(body, "Purged 1, skipped 1") {
		t.Fatalf("purge: %d %s", resp.StatusCode, body)
	}
	if len(deadIDs(t, s)) != 0 {
		t.Fatal("the purge left the dead letter")
	}
	// A dead delivery is replayed from its message page.
	second := s.send(t, "/orders", `{}`)
	waitFor(t, "a second dead letter", func() bool { return s.messageStatus(t, second) == "partially_succeeded" })
	ids = deadIDs(t, s)
	if len(ids) != 1 {
		t.Fatalf("dead letters %v, want one", ids)
	}
	_, page = get(t, c, s.srv.URL+"/ui/messages/"+second)
	if !strings.Contains(page, `action="/ui/deliveries/`+ids[0]+`/replay"`) {
		t.Fatal("the message page offers no replay of its dead delivery")
	}
	s.shipping.status.Store(200)
	resp, _ = post(t, c, s.srv.URL+"/ui/deliveries/"+ids[0]+"/replay", url.Values{"csrf": {tok}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/messages/"+second) {
		t.Fatalf("replay from the message page: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	waitFor(t, "the replayed message to succeed", func() bool { return s.messageStatus(t, second) == "succeeded" })
	if resp, _ := post(t, c, s.srv.URL+"/ui/deliveries/"+ids[0]+"/replay", url.Values{"csrf": {tok}}); resp.StatusCode != 400 {
		t.Errorf("replaying a delivery that is not dead: %d, want 400", resp.StatusCode)
	}
	// Cross-site requests are refused even with the token.
	req, _ := http.NewRequest("POST", s.srv.URL+"/ui/dead-letters/confirm", strings.NewReader(url.Values{"csrf": {tok}, "action": {"replay"}, "id": ids}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("cross-site POST: %v %v, want 403", resp.StatusCode, err)
	}
}

func deadIDs(t *testing.T, s *stack) []string {
	t.Helper()
	req, _ := http.NewRequest("GET", s.srv.URL+"/v1/dead-letters", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l struct {
		DeadLetters []struct{ ID string } `json:"dead_letters"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range l.DeadLetters {
		ids = append(ids, d.ID)
	}
	return ids
}

func TestNoKeysLoopbackOnly(t *testing.T) {
	s := newStack(t, false)
	h := s.srv.Config.Handler
	for _, remote := range []string{"10.1.2.3:5555", "[2001:db8::1]:80"} {
		r := httptest.NewRequest("GET", "/ui/", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 403 || !strings.Contains(w.Body.String(), "loopback") {
			t.Errorf("from %s: %d, want 403", remote, w.Code)
		}
	}
}

func TestLoginLogout(t *testing.T) {
	s := newStack(t, true)
	c := client(t)
	resp, _ := get(t, c, s.srv.URL+"/ui/targets")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login?next=%2Fui%2Ftargets" {
		t.Fatalf("no session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, c, s.srv.URL+"/ui/events"); resp.StatusCode != 401 {
		t.Errorf("events without a session: %d", resp.StatusCode)
	}
	_, page := get(t, c, s.srv.URL+"/ui/login?next=/ui/targets")
	tok := csrfOf(t, page)
	for _, bad := range []url.Values{
		{"key": {"wrong"}, "csrf": {tok}},
		{"key": {"shop-key"}, "csrf": {tok}}, // a key without the admin scope
	} {
		if resp, body := post(t, c, s.srv.URL+"/ui/login", bad); resp.StatusCode != 401 || !strings.Contains(body, "admin scope") {
			t.Errorf("login %v: %d", bad["key"], resp.StatusCode)
		}
	}
	if resp, _ := post(t, c, s.srv.URL+"/ui/login", url.Values{"key": {adminKey}}); resp.StatusCode != 403 {
		t.Errorf("login without csrf: %d, want 403", resp.StatusCode)
	}
	resp, _ = post(t, c, s.srv.URL+"/ui/login", url.Values{"key": {adminKey}, "csrf": {tok}, "next": {"/ui/targets"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/targets" {
		t.Fatalf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/ui" || cookie.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/ui, not Secure without TLS", cookie)
	}
	if strings.Contains(cookie.Value, adminKey) || cookie.Value == tok {
		t.Fatal("the cookie holds the key or the csrf token")
	}
	resp, page = get(t, c, s.srv.URL+"/ui/targets")
	if resp.StatusCode != 200 || !strings.Contains(page, "Log out") {
		t.Fatalf("after login: %d", resp.StatusCode)
	}
	// The login started a new session: the pre-login token is stale.
	newTok := csrfOf(t, page)
	if newTok == tok {
		t.Error("the CSRF token did not change at login")
	}
	// next cannot leave the dashboard.
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/v1/messages"} {
		if got := safeNext(next); got != "/ui/" {
			t.Errorf("next %q → %q", next, got)
		}
	}
	if resp, _ := post(t, c, s.srv.URL+"/ui/logout", url.Values{"csrf": {tok}}); resp.StatusCode != 403 {
		t.Errorf("logout with the stale token: %d", resp.StatusCode)
	}
	resp, _ = post(t, c, s.srv.URL+"/ui/logout", url.Values{"csrf": {newTok}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Fatalf("logout: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The old cookie is worth nothing now, even replayed by hand.
	req, _ := http.NewRequest("GET", s.srv.URL+"/ui/targets", nil)
	req.AddCookie(cookie)
	if resp, err := (&http.Client{CheckRedirect: c.CheckRedirect}).Do(req); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the logged-out session still works: %v", resp.StatusCode)
	}
}

func TestExcerptRedacts(t *testing.T) {
	got := excerpt(json.RawMessage(`{"user":"ann","password":"p","nested":{"api_key":"k","list":[{"Authorization":"Bearer x","n":1}]},"amount":12.50}`))
	for _, secret := range []string{`"p"`, `"k"`, "Bearer x"} {
		if strings.Contains(got, secret) {
			t.Errorf("excerpt shows %s: %s", secret, got)
		}
	}
	if !strings.Contains(got, `"ann"`) || !strings.Contains(got, "12.50") {
		t.Errorf("excerpt lost plain values: %s", got)
	}
	if got := excerpt(json.RawMessage(`"` + strings.Repeat("a", 5000) + `"`)); len(got) > maxExcerpt+40 || !strings.HasSuffix(got, "(cut at 4 KiB)") {
		t.Errorf("long body not cut: %d", len(got))
	}
	if excerpt(nil) != "" || excerpt(json.RawMessage("null")) != "" {
		t.Error("empty body shown")
	}
}

func TestQuantile(t *testing.T) {
	// 100 samples: 50 in (0, .01], 40 in (.01, .1], 10 in (.1, 1].
	h := &histogram{bounds: []float64{.01, .1, 1}, counts: []float64{50, 90, 100}, count: 100}
	for _, c := range []struct{ q, want float64 }{{0.5, .01}, {0.25, .005}, {0.7, .055}, {0.99, .91}} {
		if got := h.quantile(c.q); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("q%.2f = %g, want %g", c.q, got, c.want)
		}
	}
}
