package ui

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tandem-run/tandem/internal/api"
)

// view is what a page handler returns: the template to render and its data.
type view struct {
	Page  string // template name (templates/<Page>.html)
	Title string
	Nav   string // the nav entry to mark current
	Data  any
	// Events is the event stream the page follows ("" for none); the
	// script subscribes after LastEventID, the hub's id when the page was
	// read, so it misses nothing in between.
	Events string
	// Live: "swap" replaces the live region on events; "notice" only
	// offers a reload (a page with a selection in progress).
	Live string

	// Filled in by render.
	LastEventID string
	CSRF        string
	LoggedIn    bool
	KeyName     string
	Status      int
}

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"overview", "messages", "message", "dead-letters", "confirm", "result", "targets", "login", "error"}

func (u *UI) parse() error {
	u.pages = map[string]*template.Template{}
	funcs := template.FuncMap{
		"ago":   func(t time.Time) string { return ago(u.opts.Now(), t) },
		"stamp": stamp,
		"stampPtr": func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return stamp(*t)
		},
		"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"short":    shortID,
		"pct":      func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
		"ms":       formatMS,
		"query":    func(kv ...string) template.URL { return template.URL(queryOf(kv...)) },
		"join":     strings.Join,
		"add":      func(a, b int) int { return a + b },
		"traceURL": u.traceURL,
	}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("ui: parse template %s: %w", name, err)
		}
		u.pages[name] = t
	}
	return nil
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, sess *session, v *view) {
	u.renderStatus(w, r, sess, v, http.StatusOK)
}

func (u *UI) renderStatus(w http.ResponseWriter, r *http.Request, sess *session, v *view, status int) {
	if sess != nil {
		v.CSRF = sess.csrf
		v.LoggedIn = sess.key != ""
		v.KeyName = sess.key
	}
	v.Status = status
	if v.Events != "" && u.opts.Hub != nil {
		v.LastEventID = u.opts.Hub.LastID()
	} else {
		v.Events = ""
	}
	var buf bytes.Buffer
	if err := u.pages[v.Page].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		u.log.Error("render dashboard page", "page", v.Page, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail renders an error page.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, sess *session, status int, detail string) {
	u.renderStatus(w, r, sess, &view{Page: "error", Title: http.StatusText(status), Data: map[string]any{"Status": status, "Detail": detail}}, status)
}

// errNotFound is returned by page handlers for a missing thing.
type notFoundError string

func (e notFoundError) Error() string { return string(e) }

// badInput is returned by page handlers for a bad form or query value.
type badInput string

func (e badInput) Error() string { return string(e) }

func (u *UI) failErr(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	var nf notFoundError
	var bad badInput
	switch {
	case errors.As(err, &nf):
		u.fail(w, r, sess, http.StatusNotFound, nf.Error())
	case errors.As(err, &bad):
		u.fail(w, r, sess, http.StatusBadRequest, bad.Error())
	default:
		var p *api.Problem
		if errors.As(err, &p) && p.Status < 500 {
			u.fail(w, r, sess, p.Status, p.Detail)
			return
		}
		u.log.Error("dashboard", "path", r.URL.Path, "error", err)
		u.fail(w, r, sess, http.StatusServiceUnavailable, "The store could not be read: "+api.ErrorDetail(err)+". Try again shortly.")
	}
}

func (u *UI) traceURL(id string) string {
	if u.opts.TraceLink == "" || id == "" {
		return ""
	}
	return strings.ReplaceAll(u.opts.TraceLink, "{trace_id}", url.PathEscape(id))
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + roundDur(-d)
	case d < time.Second:
		return "just now"
	}
	return roundDur(d) + " ago"
}

func roundDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func shortID(id string) string {
	if len(id) <= 13 {
		return id
	}
	return id[:8] + "…" + id[len(id)-4:]
}

func formatMS(ms float64) string {
	switch {
	case ms < 0:
		return "–"
	case ms < 10:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 10000:
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.1f s", ms/1000)
}

// queryOf builds "?k=v&..." from pairs, leaving out empty values.
func queryOf(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}
