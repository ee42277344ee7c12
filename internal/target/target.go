package target

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"golang.org/x/oauth2"

	"github.com/tandem-run/tandem/internal/record"
)

// Defaults for endpoints and callers.
const (
	// DefaultConnectTimeout bounds dialing and the TLS handshake.
	DefaultConnectTimeout = 2 * time.Second
	// DefaultTotalTimeout bounds a whole attempt, body included.
	DefaultTotalTimeout = 10 * time.Second
	// DefaultMaxResponseBody caps the response body kept per attempt.
	DefaultMaxResponseBody = 64 << 10
	// DefaultMaxIdleConnsPerHost keeps enough idle connections for 256
	// concurrent calls to one host, with room to spare.
	DefaultMaxIdleConnsPerHost = 512
	// maxDrain bounds how much of an over-long body is read and thrown away
	// to keep the connection; past it, the connection is closed instead.
	maxDrain = 1 << 20
)

// Endpoint is one downstream API endpoint and how to call it.
type Endpoint struct {
	// Name identifies the target in errors and metrics.
	Name string
	// URL of the endpoint, http or https.
	URL string
	// Method is the HTTP method. Default POST.
	Method string
	// ConnectTimeout bounds dialing and the TLS handshake. Default
	// CallerOptions.DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// TotalTimeout bounds the attempt, response body included. Default
	// CallerOptions.DefaultTotalTimeout.
	TotalTimeout time.Duration
	// Header holds static headers sent on every call. Default none.
	Header http.Header
	// Auth adds credentials to every call. Default none.
	Auth Auth
	// SuccessStatus lists extra statuses that count as success. Default
	// none (2xx only).
	SuccessStatus []int
	// MaxResponseBody caps the response body kept; the rest is drained and
	// dropped. Default DefaultMaxResponseBody; negative keeps nothing.
	MaxResponseBody int64
	// Sign signs every request (sign.go), each attempt anew. Default none.
	Sign []Signer
	// OAuth2 fetches the access token sent as "Authorization: Bearer"
	// (oauth2.go). Default none.
	OAuth2 *OAuth2
	// TLS sets the CA, client certificate and server name for https
	// (tls.go). Default: system roots, no client certificate.
	TLS *TLSClient
	// Hosts, when set, spreads attempts over several hosts (hosts.go);
	// URL is then the first host's. Default nil: URL alone.
	Hosts *HostPool
	// Contract, when set, checks requests before they are sent and
	// answers after (hosts.go). Default nil.
	Contract Contract
}

// Auth holds an endpoint's credentials. Each non-empty kind is sent; the
// config allows at most one.
type Auth struct {
	// Bearer sends "Authorization: Bearer <Bearer>".
	Bearer string
	// BasicUser and BasicPass send HTTP basic auth when either is set.
	BasicUser, BasicPass string
	// HeaderName and HeaderValue send one credential header.
	HeaderName, HeaderValue string
}

func (a *Auth) apply(req *http.Request) {
	if a.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+a.Bearer)
	}
	if a.BasicUser != "" || a.BasicPass != "" {
		req.SetBasicAuth(a.BasicUser, a.BasicPass)
	}
	if a.HeaderName != "" {
		req.Header.Set(a.HeaderName, a.HeaderValue)
	}
}

// Request is one call to make.
type Request struct {
	// Endpoint to call. Nil means defaults everywhere, and URL is required.
	Endpoint *Endpoint
	// Method overrides Endpoint.Method when set.
	Method string
	// URL overrides Endpoint.URL when set.
	URL string
	// Body is sent as is; nil sends none.
	Body []byte
	// Header holds extra headers; they replace the endpoint's static
	// headers of the same name.
	Header http.Header
	// IdempotencyKey is sent as Idempotency-Key when set.
	IdempotencyKey string
}

// Result is what one call yielded.
type Result struct {
	// Outcome is Classify(Status, Err, Endpoint.SuccessStatus).
	Outcome record.Outcome
	// Status is the HTTP status; 0 when no answer came.
	Status int
	// Body is the response body, at most Endpoint.MaxResponseBody bytes.
	Body []byte
	// Truncated is true when the body was longer than the cap.
	Truncated bool
	// Header is the response header; nil when no answer came.
	Header http.Header
	// Duration is from the start of Do until the body was read.
	Duration time.Duration
	// RetryAfter is the target's Retry-After on a failed status (capped at
	// MaxRetryAfter); 0 when none, or when the target allows a retry now.
	RetryAfter time.Duration
	// Err is nil on success, else an *Error naming the fault.
	Err error
	// Unknown: the request was written whole, but no answer came (a
	// timeout or a reset after writing), or a success status came and its
	// body broke off. The target may have acted on it; a saga compensates
	// such a step if it ends dead.
	Unknown bool
	// Host is the base URL of the host the attempt went to, when the
	// endpoint has a HostPool.
	Host string
	// Violation says how the answer breaks the endpoint's Contract; ""
	// when it keeps it, or there is none. It does not change Outcome.
	Violation string
}

// CallerOptions configure a Caller.
type CallerOptions struct {
	// Version goes into the User-Agent, "tandem/<Version>". Default "dev".
	Version string
	// TLSConfig is the base TLS client config (roots, client certificates).
	// Default: system roots, TLS 1.2 or later.
	TLSConfig *tls.Config
	// Proxy picks a proxy per request. Default http.ProxyFromEnvironment
	// (which never proxies loopback addresses).
	Proxy func(*http.Request) (*url.URL, error)
	// MaxIdleConnsPerHost is how many idle connections to keep per host.
	// Default DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes connections idle this long. Default 90s.
	IdleConnTimeout time.Duration
	// DisableKeepAlives opens a new connection per call. Default false.
	DisableKeepAlives bool
	// DefaultConnectTimeout applies to endpoints that set none. Default
	// DefaultConnectTimeout.
	DefaultConnectTimeout time.Duration
	// DefaultTotalTimeout applies to endpoints that set none. Default
	// DefaultTotalTimeout.
	DefaultTotalTimeout time.Duration
	// Now reads the clock for Retry-After dates. Default time.Now.
	Now func() time.Time
	// Propagator writes the span context of a call's ctx into its
	// headers. Default W3C Trace Context (traceparent, tracestate).
	Propagator propagation.TextMapPropagator
	// DialControl, when set, is called for every connection with the
	// resolved address ("ip:port") before it is made; an error refuses
	// it (e.g. callbacks to private addresses). Default none.
	DialControl func(ctx context.Context, network, address string, c syscall.RawConn) error
}

func (o *CallerOptions) setDefaults() {
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Proxy == nil {
		o.Proxy = http.ProxyFromEnvironment
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = 90 * time.Second
	}
	if o.DefaultConnectTimeout <= 0 {
		o.DefaultConnectTimeout = DefaultConnectTimeout
	}
	if o.DefaultTotalTimeout <= 0 {
		o.DefaultTotalTimeout = DefaultTotalTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Propagator == nil {
		o.Propagator = propagation.TraceContext{}
	}
}

// Caller makes calls to targets over one shared connection pool. It is safe
// for concurrent use.
type Caller struct {
	opts      CallerOptions
	transport *http.Transport
	client    *http.Client
	userAgent string
	// tlsClients holds one client per TLSClient (*TLSClient → *http.Client):
	// a target with its own CA or client certificate gets its own pool.
	tlsClients sync.Map
}

// NewCaller builds a Caller with one pooled transport (keep-alive, HTTP/2
// for https when the server offers it).
func NewCaller(opts CallerOptions) *Caller {
	opts.setDefaults()
	t := newTransport(&opts)
	return &Caller{
		opts:      opts,
		transport: t,
		client:    newClient(t),
		userAgent: "tandem/" + opts.Version,
	}
}

func newClient(t http.RoundTripper) *http.Client {
	return &http.Client{
		Transport: t,
		// A redirect is an answer: following it could turn a POST into
		// a GET or send credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// clientFor returns the HTTP client of ep: the shared one, or ep's own
// when it has TLS settings.
func (c *Caller) clientFor(ep *Endpoint) *http.Client {
	if ep.TLS == nil {
		return c.client
	}
	if cl, ok := c.tlsClients.Load(ep.TLS); ok {
		return cl.(*http.Client)
	}
	opts := c.opts
	t := newTransport(&opts)
	t.DialTLSContext = (&dialer{
		net:      net.Dialer{KeepAlive: 30 * time.Second},
		tls:      t.TLSClientConfig.Clone(),
		tlsFor:   ep.TLS.config,
		fallback: opts.DefaultConnectTimeout,
	}).dialTLSContext
	cl, _ := c.tlsClients.LoadOrStore(ep.TLS, newClient(t))
	return cl.(*http.Client)
}

// Close closes idle connections. Calls in flight are not affected.
func (c *Caller) Close() {
	c.transport.CloseIdleConnections()
	c.tlsClients.Range(func(_, v any) bool {
		v.(*http.Client).CloseIdleConnections()
		return true
	})
}

// Do makes one call and classifies it. It never returns nil; failures are
// in Result.Err as an *Error. Cancelling ctx abandons the call with
// KindCanceled (transient).
func (c *Caller) Do(ctx context.Context, r *Request) *Result {
	if r == nil {
		r = &Request{}
	}
	ep := r.Endpoint
	if ep == nil {
		ep = &Endpoint{}
	}
	start := time.Now()
	res := c.send(ctx, r, ep) // hosts.go: contract, host pool, c.do
	res.Duration = time.Since(start)
	res.Outcome = Classify(res.Status, res.Err, ep.SuccessStatus)
	return res
}

func (c *Caller) do(ctx context.Context, r *Request, ep *Endpoint) *Result {
	connect := orDefault(ep.ConnectTimeout, c.opts.DefaultConnectTimeout)
	total := orDefault(ep.TotalTimeout, c.opts.DefaultTotalTimeout)
	tctx, cancel := context.WithTimeout(withConnectTimeout(ctx, connect), total)
	defer cancel()

	// Whether the request left whole decides whether a failure may have
	// reached the target (Result.Unknown).
	var wrote atomic.Bool
	tctx = httptrace.WithClientTrace(tctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true)
			}
		},
	})
	req, err := c.newRequest(tctx, r, ep)
	if err != nil {
		return &Result{Err: err}
	}
	tok, fresh, err := c.authorize(tctx, req, ep)
	if err != nil {
		if ctx.Err() != nil {
			return &Result{Err: failure(ctx, tctx, total, err)}
		}
		return &Result{Err: &Error{Kind: KindAuth, Err: err, msg: "oauth2 token: " + err.Error()}}
	}
	resp, err := c.clientFor(ep).Do(req)
	if err != nil {
		return &Result{Err: failure(ctx, tctx, total, err), Unknown: wrote.Load()}
	}
	res := &Result{Status: resp.StatusCode, Header: boundHeader(resp.Header, bodyLimit(ep))}
	if resp.StatusCode == http.StatusUnauthorized && tok != nil {
		ep.OAuth2.drop(tok)
		if !fresh {
			// The cached token was revoked or expired early: the next
			// attempt fetches a new one. A freshly fetched token that is
			// refused is the credentials' fault: permanent, as any 401.
			res.Body, res.Truncated, _ = readBody(resp, bodyLimit(ep))
			res.Err = &Error{Kind: KindAuth, Status: resp.StatusCode,
				msg: "status 401 Unauthorized: the target refused the cached OAuth2 access token; it was dropped and the next attempt fetches a new one"}
			return res
		}
	}
	res.Body, res.Truncated, err = readBody(resp, bodyLimit(ep))
	if err != nil {
		e := failure(ctx, tctx, total, err)
		e.msg += " (reading the body)"
		res.Err = e
		res.Unknown = classifyStatus(resp.StatusCode, ep.SuccessStatus) == record.OutcomeSuccess
		return res
	}
	if classifyStatus(resp.StatusCode, ep.SuccessStatus) != record.OutcomeSuccess {
		res.Err = &Error{
			Kind:   KindStatus,
			Status: resp.StatusCode,
			msg:    statusMessage(resp.StatusCode, redirectTo(resp)),
		}
		if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), c.opts.Now()); ok {
			res.RetryAfter = d
		}
	}
	return res
}

func bodyLimit(ep *Endpoint) int64 {
	if ep.MaxResponseBody == 0 {
		return DefaultMaxResponseBody
	}
	return ep.MaxResponseBody
}

// authorize sets ep's OAuth2 access token on req and returns it, with
// whether it was fetched for this call; nil without OAuth2.
func (c *Caller) authorize(ctx context.Context, req *http.Request, ep *Endpoint) (*oauth2.Token, bool, error) {
	if ep.OAuth2 == nil {
		return nil, false, nil
	}
	tok, fresh, err := ep.OAuth2.token(ctx)
	if err != nil {
		return nil, false, err
	}
	if !validHeaderValue(tok.AccessToken) {
		ep.OAuth2.drop(tok)
		return nil, false, errors.New("the access token has a control character")
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return tok, fresh, nil
}

// newRequest builds the HTTP request: URL check, headers in order of
// precedence (static, extra, then the ones tandem owns).
func (c *Caller) newRequest(ctx context.Context, r *Request, ep *Endpoint) (*http.Request, error) {
	method := firstNonEmpty(r.Method, ep.Method, http.MethodPost)
	rawURL := firstNonEmpty(r.URL, ep.URL)
	if rawURL == "" {
		return nil, urlError("empty")
	}
	var body io.Reader
	if len(r.Body) > 0 {
		body = bytes.NewReader(r.Body)
	}
	// The URL is parsed once, here, and checked on the request: a parse
	// per call costs as much as building the rest of the request.
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// The raw URL may hold credentials: leave it out.
			return nil, &Error{Kind: KindURL, Err: ue.Err, msg: "invalid url: " + ue.Err.Error()}
		}
		return nil, &Error{Kind: KindRequest, Err: err, msg: "invalid request: " + err.Error()}
	}
	if err := checkURL(req.URL); err != nil {
		return nil, err
	}
	for _, h := range []http.Header{ep.Header, r.Header} {
		for k, vs := range h {
			if !validHeaderName(k) {
				return nil, &Error{Kind: KindRequest, msg: fmt.Sprintf("invalid request: header name %q", k)}
			}
			req.Header.Del(k)
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
	}
	if host := req.Header.Get("Host"); host != "" {
		if !validHeaderValue(host) || strings.ContainsAny(host, " /") {
			return nil, &Error{Kind: KindRequest, msg: fmt.Sprintf("invalid request: Host %q", host)}
		}
		req.Host = host
		req.Header.Del("Host")
	}
	if req.Header.Get("Content-Type") == "" && len(r.Body) > 0 && json.Valid(r.Body) {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	ep.Auth.apply(req)
	if r.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", r.IdempotencyKey)
	}
	// The attempt's span is the target's parent; it replaces any
	// traceparent a template set.
	c.opts.Propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	if len(ep.Sign) > 0 {
		// Signed last, over the exact bytes sent, at this attempt's time.
		id := r.IdempotencyKey
		if id == "" {
			id = randomID()
		}
		now := c.opts.Now()
		for _, s := range ep.Sign {
			s.Sign(req.Header, id, r.Body, now)
		}
	}
	noResend(req)
	// The transport would refuse these too, but as an untyped error that
	// would be retried; a bad header never gets better.
	for k, vs := range req.Header {
		if !validHeaderName(k) {
			return nil, &Error{Kind: KindRequest, msg: fmt.Sprintf("invalid request: header name %q", k)}
		}
		for _, v := range vs {
			if !validHeaderValue(v) {
				// The value may be a secret: name the header only.
				return nil, &Error{Kind: KindRequest, msg: fmt.Sprintf("invalid request: header %q has a control character", k)}
			}
		}
	}
	return req, nil
}

// noResend makes req one that net/http never sends twice. The transport
// resends a request it deems replayable (GET, HEAD, OPTIONS, TRACE, or
// one whose header map holds the key Idempotency-Key or
// X-Idempotency-Key) when a kept-alive connection fails after the request
// was written: the target would see a request that no attempt counts.
// Every request on the wire must be a counted attempt, so:
//
//   - the two idempotency headers are kept under lowercase keys, which the
//     transport's check does not match; header names are case-insensitive
//     on the wire, and HTTP/2 lowercases them anyway;
//   - a GET, HEAD or OPTIONS request gets a body the transport cannot
//     rewind (no GetBody), which also makes it not replayable; an empty
//     one is still sent as no body at all.
//
// A request that failed before any of it was written may still be tried
// again on a fresh connection: it never reached the target.
func noResend(req *http.Request) {
	for _, k := range []string{"Idempotency-Key", "X-Idempotency-Key"} {
		if vs, ok := req.Header[k]; ok {
			delete(req.Header, k)
			req.Header[strings.ToLower(k)] = vs
		}
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		if req.Body == nil || req.Body == http.NoBody {
			req.Body = io.NopCloser(strings.NewReader(""))
		}
		req.GetBody = nil
	}
}

// checkURL rejects what no retry can fix: a scheme other than http or
// https, or no host. (An unparsable URL is refused where it is parsed.)
func checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return urlError(fmt.Sprintf("scheme %q is not http or https", u.Scheme))
	}
	if u.Host == "" {
		return urlError("no host")
	}
	return nil
}

// urlError is a permanent failure for a URL that cannot be called.
func urlError(why string) error {
	return &Error{Kind: KindURL, msg: "invalid url: " + why}
}

// failure turns a transport error into an *Error. The caller's own
// cancellation wins, then the total timeout, then what the error says.
func failure(parent, tctx context.Context, total time.Duration, err error) *Error {
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		inner = ue.Err // the URL may hold credentials in its query
	}
	kind, detail := kindOf(inner)
	switch {
	case parent.Err() != nil:
		kind, detail = KindCanceled, "canceled"
		if errors.Is(parent.Err(), context.DeadlineExceeded) {
			detail = "canceled: the caller's deadline passed"
		}
		if cause := context.Cause(parent); cause != nil && cause != parent.Err() {
			detail = "canceled: " + cause.Error()
		}
	case errors.Is(tctx.Err(), context.DeadlineExceeded) && !isConnectTimeout(inner):
		kind, detail = KindTimeout, "timeout after "+total.String()
	}
	return &Error{Kind: kind, Err: inner, msg: detail}
}

func isConnectTimeout(err error) bool {
	var cte *connectTimeoutError
	return errors.As(err, &cte)
}

// readBody reads up to limit bytes, drains a bounded rest so the
// connection can be reused, and closes the body.
func readBody(resp *http.Response, limit int64) ([]byte, bool, error) {
	defer resp.Body.Close()
	if limit < 0 {
		limit = 0
	}
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	b := buf.Bytes()
	truncated := int64(len(b)) > limit
	if truncated {
		b = b[:limit]
	}
	if len(b) == 0 {
		b = nil
	}
	if err != nil {
		return b, truncated, err
	}
	if truncated {
		// Errors here only mean the connection will not be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	}
	return b, truncated, nil
}

func redirectTo(resp *http.Response) string {
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return ""
	}
	loc := resp.Header.Get("Location")
	if u, err := url.Parse(loc); err == nil && (u.User != nil || u.RawQuery != "") {
		// Keep credentials and query secrets out of dead-letter reasons.
		u.User, u.RawQuery = nil, ""
		loc = u.String()
	}
	return loc
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// validHeaderName reports whether k is an RFC 9110 token.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue rejects control characters other than tab, which the
// transport would refuse (and which could split headers).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
