package target

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
)

// seen is what a test server saw of one request.
type seen struct {
	Method, Path, Host string
	Header             http.Header
	Body               []byte
	ProtoMajor         int
}

// recorder is a test server that records requests and answers with fn.
type recorder struct {
	srv  *httptest.Server
	reqs chan seen
	news atomic.Int64 // connections opened
}

func newRecorder(t *testing.T, fn http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{reqs: make(chan seen, 1024)}
	rec.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.reqs <- seen{r.Method, r.URL.Path, r.Host, r.Header.Clone(), body, r.ProtoMajor}
		if fn != nil {
			fn(w, r)
		}
	}))
	rec.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rec.news.Add(1)
		}
	}
	rec.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	return rec
}

func (rec *recorder) start(t *testing.T) *recorder {
	t.Helper()
	rec.srv.Start()
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) last(t *testing.T) seen {
	t.Helper()
	select {
	case s := <-rec.reqs:
		return s
	default:
		t.Fatal("the server saw no request")
	}
	return seen{}
}

func newTestCaller(t *testing.T, opts CallerOptions) *Caller {
	t.Helper()
	if opts.Version == "" {
		opts.Version = "test"
	}
	c := NewCaller(opts)
	t.Cleanup(c.Close)
	return c
}

// closedPort returns an address where nothing listens: a port bound, then
// closed.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func wantError(t *testing.T, res *Result, kind string, outcome record.Outcome, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(res.Err, &e) {
		t.Fatalf("Err = %v (%T), want *Error", res.Err, res.Err)
	}
	t.Logf("error: %v", e)
	if e.Kind != kind {
		t.Errorf("Kind = %q, want %q (err %v)", e.Kind, kind, e)
	}
	if res.Outcome != outcome {
		t.Errorf("Outcome = %s, want %s", res.Outcome, outcome)
	}
	if !strings.Contains(e.Error(), msg) {
		t.Errorf("message %q does not contain %q", e.Error(), msg)
	}
}

func TestDoSuccess(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Answer", "yes")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"c1"}`)
	}).start(t)
	c := newTestCaller(t, CallerOptions{})
	ep := &Endpoint{Name: "payments", URL: rec.srv.URL + "/charges"}
	res := c.Do(context.Background(), &Request{
		Endpoint:       ep,
		Body:           []byte(`{"amount":5}`),
		IdempotencyKey: "m1.charge",
	})
	if res.Err != nil || res.Outcome != record.OutcomeSuccess || res.Status != 201 {
		t.Fatalf("got %s %d %v, want success 201", res.Outcome, res.Status, res.Err)
	}
	if string(res.Body) != `{"id":"c1"}` || res.Truncated {
		t.Errorf("Body = %q truncated=%v", res.Body, res.Truncated)
	}
	if res.Header.Get("X-Answer") != "yes" {
		t.Errorf("response header lost: %v", res.Header)
	}
	if res.Duration <= 0 || res.RetryAfter != 0 {
		t.Errorf("Duration = %v, RetryAfter = %v", res.Duration, res.RetryAfter)
	}
	s := rec.last(t)
	checks := map[string][2]string{
		"method":          {s.Method, "POST"},
		"path":            {s.Path, "/charges"},
		"body":            {string(s.Body), `{"amount":5}`},
		"Idempotency-Key": {s.Header.Get("Idempotency-Key"), "m1.charge"},
		"Content-Type":    {s.Header.Get("Content-Type"), "application/json"},
		"User-Agent":      {s.Header.Get("User-Agent"), "tandem/test"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
}

func TestDoStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		success    []int
		outcome    record.Outcome
		msg        string
		retryAfter time.Duration
	}{
		{"503", 503, nil, nil, record.OutcomeTransient, "status 503 Service Unavailable", 0},
		{"503 retry-after", 503, map[string]string{"Retry-After": "30"}, nil, record.OutcomeTransient, "status 503", 30 * time.Second},
		{"429 retry-after", 429, map[string]string{"Retry-After": "7"}, nil, record.OutcomeTransient, "status 429 Too Many Requests", 7 * time.Second},
		{"429 bad retry-after", 429, map[string]string{"Retry-After": "later"}, nil, record.OutcomeTransient, "status 429", 0},
		{"404", 404, nil, nil, record.OutcomePermanent, "status 404 Not Found", 0},
		{"400", 400, nil, nil, record.OutcomePermanent, "status 400 Bad Request", 0},
		{"408", 408, nil, nil, record.OutcomeTransient, "status 408", 0},
		{"redirect not followed", 301, map[string]string{"Location": "/elsewhere?token=secret"}, nil, record.OutcomePermanent, "status 301 Moved Permanently (to /elsewhere)", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, `{"error":"nope"}`)
			}).start(t)
			c := newTestCaller(t, CallerOptions{})
			res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL, SuccessStatus: tt.success}})
			if res.Status != tt.status {
				t.Errorf("Status = %d, want %d", res.Status, tt.status)
			}
			wantError(t, res, KindStatus, tt.outcome, tt.msg)
			if strings.Contains(res.Err.Error(), "secret") {
				t.Errorf("message leaks the redirect's query: %q", res.Err)
			}
			if res.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", res.RetryAfter, tt.retryAfter)
			}
			if string(res.Body) != `{"error":"nope"}` {
				t.Errorf("Body = %q, want the error body kept", res.Body)
			}
			rec.last(t)
			if n := len(rec.reqs); n != 0 {
				t.Errorf("server saw %d more requests (redirect followed?)", n)
			}
		})
	}
}

func TestDoSuccessStatusListed(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(409) }).start(t)
	c := newTestCaller(t, CallerOptions{})
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL, SuccessStatus: []int{409}}})
	if res.Outcome != record.OutcomeSuccess || res.Err != nil {
		t.Errorf("got %s %v, want success", res.Outcome, res.Err)
	}
}

func TestDoRetryAfterDate(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat))
		w.WriteHeader(503)
	}).start(t)
	c := newTestCaller(t, CallerOptions{Now: func() time.Time { return now }})
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL}})
	if res.RetryAfter != 90*time.Second {
		t.Errorf("RetryAfter = %v, want 90s", res.RetryAfter)
	}
}

// blockUntilGone answers nothing until the client goes away.
func blockUntilGone(arrived chan<- struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if arrived != nil {
			arrived <- struct{}{}
		}
		<-r.Context().Done()
	}
}

func TestDoTotalTimeout(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, blockUntilGone(nil)).start(t)
	c := newTestCaller(t, CallerOptions{})
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL, TotalTimeout: 50 * time.Millisecond}})
	wantError(t, res, KindTimeout, record.OutcomeTransient, "timeout after 50ms")
	if res.Status != 0 {
		t.Errorf("Status = %d, want 0", res.Status)
	}
	if res.Duration < 50*time.Millisecond {
		t.Errorf("Duration = %v, shorter than the timeout", res.Duration)
	}
}

func TestDoTimeoutDuringBody(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		io.WriteString(w, `{"partial":`)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}).start(t)
	c := newTestCaller(t, CallerOptions{})
	// Long enough for the status line to arrive on a loaded machine.
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL, TotalTimeout: time.Second}})
	// The status came, the body did not: a later step could not use it.
	wantError(t, res, KindTimeout, record.OutcomeTransient, "timeout after 1s (reading the body)")
	if res.Status != 200 {
		t.Errorf("Status = %d, want 200 kept", res.Status)
	}
}

func TestDoCanceledDuringBody(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		io.WriteString(w, `{"partial":`)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}).start(t)
	c := newTestCaller(t, CallerOptions{})
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	// Cancel once the answer has started to arrive.
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotFirstResponseByte: func() { cancel(errors.New("shutting down")) },
	})
	res := c.Do(ctx, &Request{Endpoint: &Endpoint{URL: rec.srv.URL, TotalTimeout: time.Minute}})
	wantError(t, res, KindCanceled, record.OutcomeTransient, "canceled: shutting down")
}

func TestDoConnectTimeout(t *testing.T) {
	t.Parallel()
	// A listener that never accepts: the kernel completes the TCP handshake,
	// nobody answers the TLS hello.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c := newTestCaller(t, CallerOptions{})
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{
		URL:            "https://" + l.Addr().String() + "/",
		ConnectTimeout: 50 * time.Millisecond,
		TotalTimeout:   time.Minute,
	}})
	wantError(t, res, KindTimeout, record.OutcomeTransient, "connect timeout after 50ms")
	if res.Duration > 30*time.Second {
		t.Errorf("Duration = %v: the total timeout applied, not the connect one", res.Duration)
	}
}

func TestDoConnectionRefused(t *testing.T) {
	t.Parallel()
	c := newTestCaller(t, CallerOptions{})
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: "http://" + closedPort(t) + "/x"}})
	wantError(t, res, KindConnect, record.OutcomeTransient, "connect: connection refused")
	if got := res.Err.Error(); got != "connect: connection refused" {
		t.Errorf("message = %q", got)
	}
}

func TestDoBrokenConnection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reset bool
		msg   string
	}{
		{"closed", false, "connection closed by peer"},
		{"reset", true, "connection reset by peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					return
				}
				if tt.reset {
					conn.(*net.TCPConn).SetLinger(0)
				}
				conn.Close()
			}).start(t)
			c := newTestCaller(t, CallerOptions{})
			res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL}, Body: []byte("x"), IdempotencyKey: "k"})
			wantError(t, res, KindReset, record.OutcomeTransient, tt.msg)
		})
	}
}

func TestDoUntrustedCertificate(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil)
	rec.srv.StartTLS()
	t.Cleanup(rec.srv.Close)
	c := newTestCaller(t, CallerOptions{})
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL}})
	wantError(t, res, KindTLS, record.OutcomePermanent, "certificate")
	if len(rec.reqs) != 0 {
		t.Error("the request reached an untrusted server")
	}
}

func TestDoPlainServerOverHTTPS(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil).start(t)
	c := newTestCaller(t, CallerOptions{})
	url := strings.Replace(rec.srv.URL, "http://", "https://", 1)
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: url}})
	wantError(t, res, KindTLS, record.OutcomePermanent, "does not speak TLS")
}

func TestDoHTTP2(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	rec.srv.EnableHTTP2 = true
	rec.srv.StartTLS()
	t.Cleanup(rec.srv.Close)
	roots := rec.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	c := newTestCaller(t, CallerOptions{TLSConfig: &tls.Config{RootCAs: roots}})
	for range 3 {
		res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL}, Body: []byte("{}")})
		if res.Err != nil || string(res.Body) != "ok" {
			t.Fatalf("got %v %q", res.Err, res.Body)
		}
		if s := rec.last(t); s.ProtoMajor != 2 || string(s.Body) != "{}" {
			t.Errorf("server saw HTTP/%d body %q, want HTTP/2 with the body", s.ProtoMajor, s.Body)
		}
	}
	if n := rec.news.Load(); n != 1 {
		t.Errorf("opened %d connections, want 1", n)
	}
}

func TestDoTruncatesAndReusesConnection(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("a"), 10_000)
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { w.Write(big) }).start(t)
	c := newTestCaller(t, CallerOptions{})
	ep := &Endpoint{URL: rec.srv.URL, MaxResponseBody: 100}
	for range 5 {
		res := c.Do(context.Background(), &Request{Endpoint: ep})
		if res.Err != nil || len(res.Body) != 100 || !res.Truncated {
			t.Fatalf("got err %v, %d bytes, truncated %v; want 100 bytes truncated", res.Err, len(res.Body), res.Truncated)
		}
	}
	if n := rec.news.Load(); n != 1 {
		t.Errorf("opened %d connections for 5 calls, want 1 (body not drained?)", n)
	}
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL, MaxResponseBody: -1}})
	if res.Err != nil || len(res.Body) != 0 || !res.Truncated {
		t.Errorf("negative cap: err %v, %d bytes, truncated %v", res.Err, len(res.Body), res.Truncated)
	}
	res = c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL, MaxResponseBody: 10_000}})
	if len(res.Body) != 10_000 || res.Truncated {
		t.Errorf("exact cap: %d bytes, truncated %v", len(res.Body), res.Truncated)
	}
}

func TestDoConcurrentReuse(t *testing.T) {
	t.Parallel()
	const n = 256
	var (
		mu      sync.Mutex
		arrived int
		release = make(chan struct{})
	)
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		if arrived == n {
			close(release)
		}
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "ok")
	})
	rec.reqs = make(chan seen, 2*n)
	rec.start(t)
	c := newTestCaller(t, CallerOptions{})
	ep := &Endpoint{URL: rec.srv.URL, TotalTimeout: time.Minute}
	round := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() {
				if res := c.Do(context.Background(), &Request{Endpoint: ep}); res.Err != nil {
					errs <- res.Err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	round() // all n in flight at once: n connections
	round() // served from the idle pool
	if got := rec.news.Load(); got != n {
		t.Errorf("opened %d connections for two rounds of %d concurrent calls, want %d", got, n, n)
	}
}

func TestDoAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		auth         Auth
		header, want string
	}{
		{"bearer", Auth{Bearer: "tok"}, "Authorization", "Bearer tok"},
		{"basic", Auth{BasicUser: "u", BasicPass: "p"}, "Authorization", "Basic dTpw"},
		{"header", Auth{HeaderName: "X-Api-Key", HeaderValue: "k1"}, "X-Api-Key", "k1"},
		{"none", Auth{}, "Authorization", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t, nil).start(t)
			c := newTestCaller(t, CallerOptions{})
			// A request header cannot replace the target's credentials.
			res := c.Do(context.Background(), &Request{
				Endpoint: &Endpoint{URL: rec.srv.URL, Auth: tt.auth},
				Header:   http.Header{"Authorization": {"Bearer forged"}, "X-Api-Key": {"forged"}},
			})
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			got := rec.last(t).Header.Get(tt.header)
			if tt.want == "" {
				tt.want = "Bearer forged"
			}
			if got != tt.want {
				t.Errorf("%s = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}

func TestDoHeaders(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil).start(t)
	c := newTestCaller(t, CallerOptions{})
	ep := &Endpoint{
		URL:    rec.srv.URL,
		Method: http.MethodPut,
		Header: http.Header{"X-Static": {"s"}, "X-Both": {"from-endpoint"}, "Content-Type": {"application/vnd.x+json"}},
	}
	res := c.Do(context.Background(), &Request{
		Endpoint: ep,
		Method:   http.MethodPatch,
		URL:      rec.srv.URL + "/override",
		Body:     []byte(`{"a":1}`),
		Header:   http.Header{"X-Both": {"from-request"}, "User-Agent": {"custom"}, "Host": {"example.test"}},
	})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	s := rec.last(t)
	checks := map[string][2]string{
		"method":       {s.Method, "PATCH"},
		"path":         {s.Path, "/override"},
		"host":         {s.Host, "example.test"},
		"X-Static":     {s.Header.Get("X-Static"), "s"},
		"X-Both":       {strings.Join(s.Header.Values("X-Both"), ","), "from-request"},
		"Content-Type": {s.Header.Get("Content-Type"), "application/vnd.x+json"},
		"User-Agent":   {s.Header.Get("User-Agent"), "custom"},
		"no key":       {s.Header.Get("Idempotency-Key"), ""},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}

	// A body that is not JSON gets no guessed Content-Type.
	res = c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL}, Body: []byte("plain text")})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if ct := rec.last(t).Header.Get("Content-Type"); ct != "" {
		t.Errorf("Content-Type = %q for a text body, want none", ct)
	}
}

func TestDoInvalidRequest(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil).start(t)
	tests := []struct {
		name   string
		req    Request
		kind   string
		msg    string
		secret string
	}{
		{"empty url", Request{}, KindURL, "invalid url: empty", ""},
		{"unparsable", Request{URL: "http://a b.test/%zz"}, KindURL, "invalid url", ""},
		{"scheme", Request{URL: "ftp://127.0.0.1/x"}, KindURL, `scheme "ftp"`, ""},
		{"no host", Request{URL: "http:///path"}, KindURL, "no host", ""},
		{"method", Request{URL: rec.srv.URL, Method: "BAD METHOD"}, KindRequest, "invalid request", ""},
		{"header name", Request{URL: rec.srv.URL, Header: http.Header{"Bad Name": {"v"}}}, KindRequest, `header name "Bad Name"`, ""},
		{"header value", Request{URL: rec.srv.URL, Header: http.Header{"X-Token": {"sec\r\nret"}}}, KindRequest, `header "X-Token"`, "sec"},
		{"static header", Request{Endpoint: &Endpoint{URL: rec.srv.URL, Header: http.Header{"X-K": {"a\x00"}}}}, KindRequest, `header "X-K"`, ""},
		{"secret with newline", Request{Endpoint: &Endpoint{URL: rec.srv.URL, Auth: Auth{Bearer: "tok\n"}}}, KindRequest, `header "Authorization"`, "tok"},
		{"host", Request{URL: rec.srv.URL, Header: http.Header{"Host": {"a b"}}}, KindRequest, `Host "a b"`, ""},
		{"auth header name", Request{Endpoint: &Endpoint{URL: rec.srv.URL, Auth: Auth{HeaderName: "X Key", HeaderValue: "v"}}}, KindRequest, `header name "X Key"`, ""},
	}
	c := newTestCaller(t, CallerOptions{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.Do(context.Background(), &tt.req)
			wantError(t, res, tt.kind, record.OutcomePermanent, tt.msg)
			if tt.secret != "" && strings.Contains(res.Err.Error(), tt.secret) {
				t.Errorf("message %q leaks the header value", res.Err)
			}
		})
	}
	if n := len(rec.reqs); n != 0 {
		t.Errorf("the server saw %d invalid requests", n)
	}
}

func TestDoCanceledByCaller(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cancel func(context.Context) (context.Context, func())
		msg    string
	}{
		{"cancel", func(ctx context.Context) (context.Context, func()) {
			ctx, cancel := context.WithCancel(ctx)
			return ctx, cancel
		}, "canceled"},
		{"cause", func(ctx context.Context) (context.Context, func()) {
			ctx, cancel := context.WithCancelCause(ctx)
			return ctx, func() { cancel(errors.New("shutting down")) }
		}, "canceled: shutting down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			arrived := make(chan struct{}, 1)
			rec := newRecorder(t, blockUntilGone(arrived)).start(t)
			c := newTestCaller(t, CallerOptions{})
			ctx, cancel := tt.cancel(context.Background())
			go func() {
				<-arrived
				cancel()
			}()
			res := c.Do(ctx, &Request{Endpoint: &Endpoint{URL: rec.srv.URL, TotalTimeout: time.Minute}})
			wantError(t, res, KindCanceled, record.OutcomeTransient, tt.msg)
			if got := res.Err.Error(); got != tt.msg {
				t.Errorf("message = %q, want %q", got, tt.msg)
			}
		})
	}
}

func TestDoCallerDeadline(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, blockUntilGone(nil)).start(t)
	c := newTestCaller(t, CallerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res := c.Do(ctx, &Request{Endpoint: &Endpoint{URL: rec.srv.URL, TotalTimeout: time.Minute}})
	wantError(t, res, KindCanceled, record.OutcomeTransient, "canceled: the caller's deadline passed")
}

func TestDoDecompressesGzip(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			io.WriteString(w, "plain")
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, strings.Repeat("z", 500))
		zw.Close()
	}).start(t)
	c := newTestCaller(t, CallerOptions{})
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: rec.srv.URL, MaxResponseBody: 100}})
	if res.Err != nil || string(res.Body) != strings.Repeat("z", 100) || !res.Truncated {
		t.Errorf("got err %v, body %q, truncated %v; want 100 decompressed bytes, truncated", res.Err, res.Body, res.Truncated)
	}
}

// TestUnknownOutcome: a failure may have reached the target only when the
// request was written whole and no answer came.
func TestUnknownOutcome(t *testing.T) {
	t.Parallel()
	c := newTestCaller(t, CallerOptions{})
	hang := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }).start(t)
	res := c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: hang.srv.URL, TotalTimeout: 100 * time.Millisecond}})
	if res.Outcome != record.OutcomeTransient || !res.Unknown {
		t.Errorf("timeout after the request was written: outcome %s, unknown %v; want transient and unknown", res.Outcome, res.Unknown)
	}
	addr := closedPort(t) // the connection is refused: nothing was sent
	res = c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: "http://" + addr + "/x", TotalTimeout: time.Second}})
	if res.Outcome != record.OutcomeTransient || res.Unknown {
		t.Errorf("connection refused: outcome %s, unknown %v; want transient, not unknown", res.Outcome, res.Unknown)
	}
	ok := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }).start(t)
	res = c.Do(context.Background(), &Request{Endpoint: &Endpoint{URL: ok.srv.URL}})
	if res.Status != 503 || res.Unknown {
		t.Errorf("an answered 503: status %d, unknown %v; want known", res.Status, res.Unknown)
	}
}
