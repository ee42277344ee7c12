package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
)

// tokenServer is a real OAuth2 token endpoint for the client-credentials
// grant (RFC 6749 §4.4): it checks the client's credentials and the form,
// issues numbered tokens, and counts requests.
type tokenServer struct {
	srv      *httptest.Server
	requests atomic.Int64
	fail     atomic.Int32 // a status to answer with instead, 0: none
	expires  int          // expires_in of issued tokens
	mu       sync.Mutex
	issued   map[string]bool
	scopes   []string // the scope parameter of each request
	aud      []string
}

func newTokenServer(t *testing.T, expires int) *tokenServer {
	t.Helper()
	ts := &tokenServer{expires: expires, issued: map[string]bool{}}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ts.requests.Add(1)
		if code := ts.fail.Load(); code != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(int(code))
			_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"try later"}`))
			return
		}
		id, secret, ok := r.BasicAuth()
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		w.Header().Set("Content-Type", "application/json")
		if id != "tandem" || secret != "client-secret-1" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		if r.PostForm.Get("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"unsupported_grant_type"}`))
			return
		}
		tok := fmt.Sprintf("tok-%d", n)
		ts.mu.Lock()
		ts.issued[tok] = true
		ts.scopes = append(ts.scopes, r.PostForm.Get("scope"))
		ts.aud = append(ts.aud, r.PostForm.Get("audience"))
		ts.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": ts.expires})
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) revoke(tok string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	delete(ts.issued, tok)
}

func (ts *tokenServer) valid(tok string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.issued[tok]
}

// protected is a target that accepts only tokens the token server issued.
func protected(t *testing.T, ts *tokenServer, seen *[]string, mu *sync.Mutex) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		*seen = append(*seen, tok)
		mu.Unlock()
		if !ts.valid(tok) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestOAuth2ClientCredentials(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t, 3600)
	var (
		mu   sync.Mutex
		seen []string
	)
	target := protected(t, ts, &seen, &mu)
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	o := NewOAuth2(OAuth2Options{
		TokenURL: ts.srv.URL + "/token", ClientID: "tandem", ClientSecret: "client-secret-1",
		Scopes: []string{"orders:write", "orders:read"}, Params: map[string][]string{"audience": {"https://crm"}}, Now: clock,
	})
	c := NewCaller(CallerOptions{})
	ep := &Endpoint{URL: target.URL, OAuth2: o}
	call := func() *Result { return c.Do(context.Background(), &Request{Endpoint: ep, Body: []byte(`{}`)}) }

	// Cached: many calls, one token request, even when they race.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res := call(); res.Err != nil {
				t.Error(res.Err)
			}
		}()
	}
	wg.Wait()
	if n := ts.requests.Load(); n != 1 {
		t.Fatalf("%d token requests for 20 calls, want 1", n)
	}
	if ts.scopes[0] != "orders:write orders:read" || ts.aud[0] != "https://crm" {
		t.Errorf("token request scope %q audience %q", ts.scopes[0], ts.aud[0])
	}

	// Near expiry it is fetched anew.
	now.Add(int64(3600*time.Second - 5*time.Second))
	if res := call(); res.Err != nil {
		t.Fatal(res.Err)
	}
	if n := ts.requests.Load(); n != 2 {
		t.Fatalf("%d token requests after expiry, want 2", n)
	}

	// The target revokes the cached token: this attempt fails transient
	// with a clear reason, the token is dropped, the next attempt works.
	mu.Lock()
	last := seen[len(seen)-1]
	mu.Unlock()
	ts.revoke(last)
	res := call()
	var te *Error
	if !errors.As(res.Err, &te) || te.Kind != KindAuth || res.Outcome != record.OutcomeTransient {
		t.Fatalf("revoked token: outcome %v, err %v; want transient %s", res.Outcome, res.Err, KindAuth)
	}
	if !strings.Contains(res.Err.Error(), "refused the cached OAuth2 access token") {
		t.Errorf("reason %q", res.Err)
	}
	if res := call(); res.Err != nil {
		t.Fatalf("after the drop: %v", res.Err)
	}
	if n := ts.requests.Load(); n != 3 {
		t.Fatalf("%d token requests after a 401, want 3", n)
	}
}

func TestOAuth2Failures(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t, 3600)
	var (
		mu   sync.Mutex
		seen []string
	)
	target := protected(t, ts, &seen, &mu)
	c := NewCaller(CallerOptions{})

	// A token endpoint that fails is transient, with the reason.
	ts.fail.Store(http.StatusServiceUnavailable)
	ep := &Endpoint{URL: target.URL, OAuth2: NewOAuth2(OAuth2Options{TokenURL: ts.srv.URL, ClientID: "tandem", ClientSecret: "client-secret-1"})}
	res := c.Do(context.Background(), &Request{Endpoint: ep})
	if res.Outcome != record.OutcomeTransient || !strings.Contains(res.Err.Error(), "oauth2 token: the token endpoint answered 503 temporarily_unavailable: try later") {
		t.Fatalf("503 token endpoint: %v %v", res.Outcome, res.Err)
	}
	if len(seen) != 0 {
		t.Fatal("the target was called without a token")
	}
	ts.fail.Store(0)
	if res := c.Do(context.Background(), &Request{Endpoint: ep}); res.Err != nil {
		t.Fatalf("after the token endpoint came back: %v", res.Err)
	}

	// Wrong client secret: transient too (never dead-lettered at once),
	// and the reason says so; the secret is not in it.
	bad := &Endpoint{URL: target.URL, OAuth2: NewOAuth2(OAuth2Options{TokenURL: ts.srv.URL, ClientID: "tandem", ClientSecret: "wrong-secret-xyz"})}
	res = c.Do(context.Background(), &Request{Endpoint: bad})
	if res.Outcome != record.OutcomeTransient || !strings.Contains(res.Err.Error(), "invalid_client") || strings.Contains(res.Err.Error(), "wrong-secret-xyz") {
		t.Fatalf("bad credentials: %v %v", res.Outcome, res.Err)
	}

	// A closed port: transient.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/token"
	ln.Close()
	down := &Endpoint{URL: target.URL, OAuth2: NewOAuth2(OAuth2Options{TokenURL: dead, ClientID: "tandem", ClientSecret: "client-secret-1"})}
	res = c.Do(context.Background(), &Request{Endpoint: down})
	if res.Outcome != record.OutcomeTransient || !strings.HasPrefix(res.Err.Error(), "oauth2 token:") {
		t.Fatalf("token endpoint down: %v %v", res.Outcome, res.Err)
	}

	// A freshly fetched token the target refuses: the credentials are
	// wrong for this target; permanent like any 401.
	always401 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer always401.Close()
	ep401 := &Endpoint{URL: always401.URL, OAuth2: NewOAuth2(OAuth2Options{TokenURL: ts.srv.URL, ClientID: "tandem", ClientSecret: "client-secret-1"})}
	before := ts.requests.Load()
	res = c.Do(context.Background(), &Request{Endpoint: ep401})
	if res.Outcome != record.OutcomePermanent || res.Status != 401 {
		t.Fatalf("fresh token refused: %v %d %v", res.Outcome, res.Status, res.Err)
	}
	// ... and it was dropped, so a replay fetches a new one.
	_ = c.Do(context.Background(), &Request{Endpoint: ep401})
	if got := ts.requests.Load() - before; got != 2 {
		t.Fatalf("%d token requests for two refused calls, want 2", got)
	}
}
