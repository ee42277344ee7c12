package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/config"
	"github.com/tandem-run/tandem/internal/engine"
)

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 255

// strippedHeaders never reach the engine: credentials of the caller.
var strippedHeaders = []string{"Authorization", "Cookie", "Proxy-Authorization"}

// registerRoute serves one configured route and documents it in the
// OpenAPI document.
func (s *server) registerRoute(api huma.API, rt *config.Route) error {
	if reserved, ok := config.ReservedPath(rt.Path); ok {
		return fmt.Errorf("route %s: path %s is reserved for tandem's own endpoints (%s)", rt.Name, rt.Path, reserved)
	}
	pattern, err := routePattern(rt.Method, rt.Path)
	if err != nil {
		return fmt.Errorf("route %s: %w", rt.Name, err)
	}
	if s.routeOf == nil {
		s.routeOf = map[string]string{}
	}
	s.routeOf[pattern] = rt.Name
	if err := s.handle(pattern, s.ingestHandler(rt.Name)); err != nil {
		return fmt.Errorf("route %s: %w", rt.Name, err)
	}
	documentRoute(api, rt)
	return nil
}

// ingestHandler serves one route: check auth and input, hand the request
// to the engine, write its answer.
func (s *server) ingestHandler(route string) http.Handler {
	rm := s.metrics.Route(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// Answers the engine never saw are counted here, so every 4xx
		// (400, 401, 403, 413, 415, ...) shows in tandem_route_answers_total.
		reject := func(p *Problem) {
			writeProblem(w, r, p)
			rm.Rejected(p.Status, time.Since(start))
		}
		r, p := s.auth.ingest(r, route)
		if p != nil {
			reject(p)
			return
		}
		in, p := s.readInbound(w, r)
		if p != nil {
			reject(p)
			return
		}
		if s.eng == nil {
			reject(unavailable("the engine is not running"))
			return
		}
		ans, err := s.eng.Ingest(r.Context(), route, in)
		if ce := (*engine.CallbackError)(nil); errors.As(err, &ce) {
			writeProblem(w, r, invalid(ce.Error(), "header."+engine.CallbackHeader))
			return
		}
		if err != nil {
			p := s.errorProblem(r.Context(), "ingest on route "+route, true, err)
			if engine.IngestCode(err) == 0 {
				reject(p)
			} else {
				writeProblem(w, r, p)
			}
			return
		}
		s.writeAnswer(w, r, ans)
	})
}

// readInbound checks and reads one inbound request. Every way the input can
// be wrong ends here as a 4xx problem.
func (s *server) readInbound(w http.ResponseWriter, r *http.Request) (*engine.Inbound, *Problem) {
	key, p := idempotencyKey(r.Header)
	if p != nil {
		return nil, p
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, newProblem(tapi.ErrMalformedRequest, "malformed query string: "+err.Error())
	}
	if r.ContentLength > s.maxBody {
		return nil, tooLarge(s.maxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(s.maxBody)
		}
		return nil, newProblem(tapi.ErrMalformedRequest, "read body: "+err.Error())
	}
	if isJSON(r.Header.Get("Content-Type")) {
		if p := checkJSON(body); p != nil {
			return nil, p
		}
	}
	header := r.Header.Clone()
	for _, h := range strippedHeaders {
		header.Del(h)
	}
	return &engine.Inbound{Body: body, Header: header, Query: query, IdempotencyKey: key, Caller: callerOf(r.Header)}, nil
}

// idempotencyKey returns the request's Idempotency-Key: at most 255
// printable ASCII characters, sent at most once.
func idempotencyKey(h http.Header) (string, *Problem) {
	vs := h.Values("Idempotency-Key")
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", newProblem(tapi.ErrMalformedRequest, "send at most one Idempotency-Key header")
	}
	k := vs[0]
	if k == "" {
		return "", newProblem(tapi.ErrMalformedRequest, "the Idempotency-Key header is empty")
	}
	if len(k) > maxIdempotencyKey {
		return "", newProblem(tapi.ErrMalformedRequest, fmt.Sprintf("the Idempotency-Key header is longer than %d characters", maxIdempotencyKey))
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "", newProblem(tapi.ErrMalformedRequest, fmt.Sprintf("the Idempotency-Key header has a character that is not printable ASCII at offset %d", i))
		}
	}
	return k, nil
}

// isJSON reports whether a Content-Type is application/json or a +json type.
func isJSON(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		// An unparsable parameter list still names its type; judge by it.
		mt, _, _ = strings.Cut(contentType, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// checkJSON returns a 400 problem when body is not one valid JSON value.
func checkJSON(body []byte) *Problem {
	if len(body) == 0 {
		return newProblem(tapi.ErrMalformedRequest, "the body is empty, but the content type is JSON")
	}
	// RFC 8259 wants UTF-8, and json.Valid does not check it; an answer or
	// a template would otherwise carry the broken bytes on.
	if !utf8.Valid(body) {
		off := 0
		for off < len(body) {
			r, n := utf8.DecodeRune(body[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return newProblem(tapi.ErrMalformedRequest, fmt.Sprintf("the body is not valid UTF-8 (at byte offset %d)", off))
	}
	if json.Valid(body) {
		return nil
	}
	var v json.RawMessage
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return newProblem(tapi.ErrMalformedRequest, fmt.Sprintf("the body is not valid JSON: %s (at byte offset %d)", se.Error(), se.Offset))
	}
	return newProblem(tapi.ErrMalformedRequest, "the body is not valid JSON")
}

// writeAnswer writes the engine's answer.
func (s *server) writeAnswer(w http.ResponseWriter, r *http.Request, ans *engine.Answer) {
	if ans == nil {
		s.log.Error("ingest returned no answer", "path", r.URL.Path)
		writeProblem(w, r, newProblem(tapi.ErrInternal, "internal error"))
		return
	}
	body := []byte(ans.Raw)
	if len(body) == 0 {
		var err error
		if body, err = json.Marshal(ans.Body); err != nil {
			s.log.Error("encode ingest answer", "path", r.URL.Path, "err", err)
			writeProblem(w, r, newProblem(tapi.ErrInternal, "internal error"))
			return
		}
	}
	status := ans.HTTPStatus
	if status == 0 {
		status = http.StatusOK
	}
	h := w.Header()
	if ans.Location != "" {
		h.Set("Location", ans.Location)
	}
	if ans.Repeat {
		h.Set("Idempotent-Replayed", "true")
	}
	for k, vs := range ans.Header {
		h[k] = vs
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
