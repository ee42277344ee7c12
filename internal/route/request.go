package route

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/tandem-run/tandem/internal/route/template"
)

// Request is a step's rendered request parts.
type Request struct {
	// Forward is true when the step has no body template: send the
	// inbound body unchanged.
	Forward bool
	// Body is the rendered body (JSON, or text for a text template).
	Body []byte
	// Header holds the rendered step headers; a text body without a
	// Content-Type header gets "text/plain; charset=utf-8". (A JSON body
	// gets application/json from the caller.)
	Header http.Header
	// Path is the rendered path suffix, each value path-escaped.
	Path string
	// Query holds the rendered query parameters.
	Query url.Values
}

// Render renders the step's request for one message. A failure is a
// *template.RenderError (wrapped with where it happened), or an error
// about a header value holding a control character: the same message
// fails the same way every time.
func (s *Step) Render(env *template.Env) (*Request, error) {
	r := &Request{Forward: s.forward}
	var err error
	switch {
	case s.body != nil:
		if r.Body, err = s.body.Render(env); err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
	case s.text != nil:
		txt, err := s.text.Render(env)
		if err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		r.Body = []byte(txt)
	}
	if len(s.headers) > 0 || s.text != nil {
		r.Header = make(http.Header, len(s.headers)+1)
	}
	for _, h := range s.headers {
		v, err := h.value.Render(env)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", h.name, err)
		}
		if i := badHeaderByte(v); i >= 0 {
			return nil, fmt.Errorf("header %s: the value holds a control character at byte %d (a line break?); it is never sent", h.name, i)
		}
		r.Header.Set(h.name, v)
	}
	if s.text != nil && r.Header.Get("Content-Type") == "" {
		r.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	if len(s.query) > 0 {
		r.Query = make(url.Values, len(s.query))
		for _, q := range s.query {
			v, err := q.value.Render(env)
			if err != nil {
				return nil, fmt.Errorf("query %s: %w", q.name, err)
			}
			r.Query.Set(q.name, v)
		}
	}
	if s.path != nil {
		if r.Path, err = s.path.RenderPath(env); err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
	}
	return r, nil
}

// badHeaderByte returns the index of the first byte a header value may
// not hold (a control character other than tab), or -1.
func badHeaderByte(v string) int {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return i
		}
	}
	return -1
}

// URL joins a target URL with a rendered path suffix and query: the path
// is appended to the URL's path (with one "/" between), the parameters are
// added to the URL's own. It returns base unchanged when r adds nothing.
func URL(base string, r *Request) (string, error) {
	if r == nil || r.Path == "" && len(r.Query) == 0 {
		return base, nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("target url: %w", err)
	}
	if r.Path != "" {
		// r.Path is escaped already; join on the escaped form so an
		// escaped "/" in a value stays one segment.
		ep := strings.TrimSuffix(u.EscapedPath(), "/")
		suffix := r.Path
		if !strings.HasPrefix(suffix, "/") {
			suffix = "/" + suffix
		}
		joined, err := url.PathUnescape(ep + suffix)
		if err != nil {
			return "", fmt.Errorf("path: %w", err)
		}
		u.Path = joined
		u.RawPath = ep + suffix
	}
	if len(r.Query) > 0 {
		q := u.Query()
		for k, vs := range r.Query {
			for _, v := range vs {
				q.Add(k, v)
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// Response shapes a waiting caller's answer.
type Response struct {
	status *template.String // nil: the computed status
	fixed  int              // a literal status; 0 when none
	body   *template.Value  // nil: the standard body
	// Reads names the steps the templates read, sorted; "*" for all.
	Reads []string
}

// compileResponse compiles a response; every step is in scope.
func compileResponse(ps *problems, r *ResponseSpec, sc *template.Scope) *Response {
	out := &Response{}
	reads := map[string]bool{}
	if st := r.Status; st != "" {
		sp := at(nil, "response", "status")
		if template.HasExpression(st) {
			t, err := template.CompileString(st, sc)
			if err != nil {
				ps.template(sp, err)
			} else {
				out.status = t
				for _, s := range t.Reads() {
					reads[s] = true
				}
			}
		} else if n, err := strconv.Atoi(strings.TrimSpace(st)); err != nil || n < 100 || n > 599 {
			ps.quoted(sp, "status %s is not an HTTP status (100..599) or a {{ }} template", st)
		} else {
			out.fixed = n
		}
	}
	if r.Body != nil {
		v, err := template.CompileValue(r.Body, sc)
		if err != nil {
			ps.template(at(nil, "response", "body"), err)
		} else {
			out.body = v
			for _, s := range v.Reads() {
				reads[s] = true
			}
		}
	}
	for s := range reads {
		out.Reads = append(out.Reads, s)
	}
	slices.Sort(out.Reads)
	return out
}

// Render renders the answer: the HTTP status (0 when the response sets
// none: keep the computed one) and the JSON body (nil when it sets none).
func (r *Response) Render(env *template.Env) (int, []byte, error) {
	code := r.fixed
	if r.status != nil {
		s, err := r.status.Render(env)
		if err != nil {
			return 0, nil, fmt.Errorf("status: %w", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 100 || n > 599 {
			return 0, nil, fmt.Errorf("status: %q is not an HTTP status (100..599)", s)
		}
		code = n
	}
	var body []byte
	if r.body != nil {
		var err error
		if body, err = r.body.Render(env); err != nil {
			return 0, nil, fmt.Errorf("body: %w", err)
		}
	}
	return code, body, nil
}
