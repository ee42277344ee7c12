package api

import (
	"encoding/json"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// problemContentType is the media type of every error answer (RFC 9457).
const problemContentType = "application/problem+json"

// Problem is the body of every error answer of the server: an RFC 9457
// problem document. Huma's admin operations and the plain handlers (route
// ingest, auth, 404, 405, panics) all answer with this one type.
type Problem struct {
	// Type is a URI reference naming the kind of problem; "about:blank"
	// means the status code says it all.
	Type string `json:"type" doc:"A URI reference that names the kind of problem; about:blank when the status says it all."`
	// Title is the status text of Status.
	Title string `json:"title" doc:"A short summary of the kind of problem (the HTTP status text)."`
	// Status repeats the HTTP status code.
	Status int `json:"status" doc:"The HTTP status code."`
	// Detail says what went wrong in this occurrence.
	Detail string `json:"detail,omitempty" doc:"What went wrong in this occurrence."`
	// Instance is the path of the request that failed.
	Instance string `json:"instance,omitempty" doc:"The path of the request that failed."`
	// Errors lists individual validation failures, when there are some.
	Errors []*huma.ErrorDetail `json:"errors,omitempty" doc:"Individual validation failures, if any."`

	header http.Header
}

// newProblem returns a problem with the given status and detail.
func newProblem(status int, detail string) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
}

// withHeader adds a response header to be sent with the problem.
func (p *Problem) withHeader(name, value string) *Problem {
	if p.header == nil {
		p.header = http.Header{}
	}
	p.header.Add(name, value)
	return p
}

// Error returns the problem's detail, so a Problem can travel as an error.
func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Detail
	}
	return p.Title
}

// GetStatus returns the HTTP status (huma.StatusError).
func (p *Problem) GetStatus() int { return p.Status }

// GetHeaders returns the extra response headers (huma.HeadersError).
func (p *Problem) GetHeaders() http.Header { return p.header }

// ContentType makes huma send problems as application/problem+json
// (huma.ContentTypeFilter).
func (p *Problem) ContentType(string) string { return problemContentType }

// writeProblem renders p on w. It is the one place where the plain handlers
// write an error; huma writes the same type for the admin operations.
func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	b, err := json.Marshal(p)
	if err != nil {
		// A Problem holds only strings and ints; this cannot fail, but an
		// answer must still go out.
		b = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`)
		p.Status = http.StatusInternalServerError
	}
	h := w.Header()
	for k, vs := range p.header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.Set("Content-Type", problemContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(p.Status)
	_, _ = w.Write(b)
}

// humaError builds huma's errors (validation failures, operation errors) as
// Problems. Installed in init as huma.NewError, so there is one error shape.
func humaError(status int, msg string, errs ...error) huma.StatusError {
	p := newProblem(status, msg)
	for _, e := range errs {
		if e == nil {
			continue
		}
		if d, ok := e.(huma.ErrorDetailer); ok {
			p.Errors = append(p.Errors, d.ErrorDetail())
			continue
		}
		p.Errors = append(p.Errors, &huma.ErrorDetail{Message: e.Error()})
	}
	return p
}

// humaErrorWithContext is humaError plus the request path as instance.
func humaErrorWithContext(ctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
	se := humaError(status, msg, errs...)
	if p, ok := se.(*Problem); ok && ctx != nil {
		u := ctx.URL()
		p.Instance = u.Path
	}
	return se
}

func init() {
	// huma keeps its error constructor in package variables. This package
	// is the only one in tandem that uses huma, so setting them once here,
	// before any API exists, is race-free and keeps every huma error in the
	// Problem shape.
	huma.NewError = humaError
	huma.NewErrorWithContext = humaErrorWithContext
}
