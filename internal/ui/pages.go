package ui

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	tapi "github.com/tandem-run/tandem/api"
	"github.com/tandem-run/tandem/internal/api"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// chartWindow is the span of the overview's charts, in chartBuckets bars.
const (
	chartWindow  = time.Hour
	chartBuckets = 12
	// chartCap bounds the messages read per route for a chart.
	chartCap = 1000
)

// messageStatuses and the filter choices of the pages.
var messageStatuses = []string{"accepted", "running", "succeeded", "partially_succeeded", "failed", "compensated"}

func (u *UI) store() store.Store { return u.opts.Engine.Store() }

// routeChart is one route's row of the overview.
type routeChart struct {
	Name                               string
	Path                               string
	Durable                            bool
	Accepted, Succeeded, Failed, Other int
	Capped                             bool
	Chart                              template.HTML
}

type overviewData struct {
	Routes  []routeChart
	Queue   tapi.Queue
	Dead    int
	Targets []tapi.Target
	Window  string
}

func (u *UI) overview(r *http.Request, _ *session) (*view, error) {
	ctx := r.Context()
	routes, err := u.opts.Admin.Routes(ctx)
	if err != nil {
		return nil, err
	}
	targets, err := u.opts.Admin.Targets(ctx)
	if err != nil {
		return nil, err
	}
	d := overviewData{Targets: targets, Window: "last hour"}
	for _, t := range targets {
		d.Queue.Due += t.Queue.Due
		d.Queue.Scheduled += t.Queue.Scheduled
		d.Queue.Waiting += t.Queue.Waiting
		d.Queue.Running += t.Queue.Running
		d.Dead += t.Queue.Dead
	}
	now := u.opts.Now()
	for _, rt := range routes {
		c := routeChart{Name: rt.Name, Path: rt.Path, Durable: rt.Durable}
		if rt.Durable && u.store() != nil {
			if err := u.chart(ctx, now, &c); err != nil {
				return nil, err
			}
		}
		d.Routes = append(d.Routes, c)
	}
	return &view{Page: "overview", Title: "Overview", Nav: "overview", Data: d, Events: "/ui/events", Live: "swap"}, nil
}

// chart counts the route's messages of the last hour in buckets.
func (u *UI) chart(ctx context.Context, now time.Time, c *routeChart) error {
	from := now.Add(-chartWindow)
	res, err := u.store().MessageList(ctx, &store.MessageListParams{Route: c.Name, CreatedFrom: from, Limit: chartCap})
	if err != nil {
		return err
	}
	c.Capped = res.NextCursor != ""
	buckets := make([]bucket, chartBuckets)
	width := chartWindow / chartBuckets
	for _, m := range res.Messages {
		i := int(m.CreatedAt.Sub(from) / width)
		if i < 0 || i >= chartBuckets {
			continue
		}
		c.Accepted++
		buckets[i].accepted++
		switch m.Status {
		case record.MessageSucceeded:
			c.Succeeded++
			buckets[i].succeeded++
		case record.MessageFailed, record.MessagePartiallySucceeded, record.MessageCompensated:
			c.Failed++
			buckets[i].failed++
		default:
			c.Other++
		}
	}
	c.Chart = barChart(c.Name, buckets, from, width)
	return nil
}

type messagesData struct {
	Messages   []tapi.MessageSummary
	Statuses   []string
	Routes     []string
	Status     string
	Route      string
	From, To   string
	Q          string
	Cursor     string
	NextCursor string
	Searched   bool
}

// timeForm is the format of the time filters (an <input type=datetime-local>, in UTC).
const timeForm = "2006-01-02T15:04"

func (u *UI) messages(r *http.Request, _ *session) (*view, error) {
	ctx := r.Context()
	q := r.URL.Query()
	d := messagesData{
		Statuses: messageStatuses, Status: q.Get("status"), Route: q.Get("route"),
		From: q.Get("from"), To: q.Get("to"), Q: strings.TrimSpace(q.Get("q")), Cursor: q.Get("cursor"),
		Messages: []tapi.MessageSummary{},
	}
	routes, err := u.opts.Admin.Routes(ctx)
	if err != nil {
		return nil, err
	}
	for _, rt := range routes {
		d.Routes = append(d.Routes, rt.Name)
	}
	if d.Status != "" && !slices.Contains(messageStatuses, d.Status) {
		return nil, badInput(fmt.Sprintf("status %q is not a message state", d.Status))
	}
	p := &store.MessageListParams{Status: record.MessageStatus(d.Status), Route: d.Route, Cursor: d.Cursor, Limit: 50}
	for _, f := range []struct {
		name, v string
		into    *time.Time
	}{{"from", d.From, &p.CreatedFrom}, {"to", d.To, &p.CreatedBefore}} {
		if f.v == "" {
			continue
		}
		t, err := time.ParseInLocation(timeForm, f.v, time.UTC)
		if err != nil {
			return nil, badInput(fmt.Sprintf("%s %q is not a time like 2026-01-02T15:04 (UTC)", f.name, f.v))
		}
		*f.into = t
	}
	v := &view{Page: "messages", Title: "Messages", Nav: "messages", Data: &d}
	st := u.store()
	if st == nil || len(d.Route) > 256 || len(d.Q) > 256 {
		return v, nil
	}
	if d.Q != "" {
		// An id or an idempotency key.
		d.Searched = true
		if md, err := st.MessageGet(ctx, d.Q); err == nil {
			d.Messages = append(d.Messages, api.SummaryView(md.Message))
		}
		p.IdempotencyKey = d.Q
	}
	res, err := st.MessageList(ctx, p)
	if err != nil {
		if d.Cursor != "" {
			return nil, badInput("the page cursor is not valid: start from the first page")
		}
		return nil, err
	}
	for _, m := range res.Messages {
		if len(d.Messages) > 0 && d.Messages[0].ID == m.ID {
			continue
		}
		d.Messages = append(d.Messages, api.SummaryView(m))
	}
	d.NextCursor = res.NextCursor
	if d.Cursor == "" {
		// The first page follows new messages live.
		v.Events, v.Live = "/ui/events"+queryOf("route", d.Route), "swap"
	}
	return v, nil
}

type messageData struct {
	M        *tapi.MessageDetail
	TraceID  string
	TraceURL string
	Graph    template.HTML
	Timeline template.HTML
	Body     string
	Steps    []stepView
}

type stepView struct {
	tapi.Delivery
	Response   string
	Replayable bool // dead, and the admin API would replay it
}

func (u *UI) message(r *http.Request, _ *session) (*view, error) {
	id := r.PathValue("id")
	st := u.store()
	if st == nil {
		return nil, notFoundError("No message with id " + id + ".")
	}
	md, err := st.MessageGet(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundError("No message with id " + id + ".")
	}
	if err != nil {
		return nil, err
	}
	m := api.MessageView(md)
	d := &messageData{M: m, TraceID: traceIDOf(m), Body: excerpt(m.Body)}
	d.TraceURL = u.traceURL(d.TraceID)
	d.Graph = stepGraph(m.Deliveries)
	d.Timeline = attemptTimeline(m.Deliveries)
	// Once a saga's compensation has begun its forward steps cannot be
	// replayed (the admin API refuses them): offer no button for those.
	began := false
	for _, dl := range m.Deliveries {
		if dl.Status == "compensating" || dl.Status == "compensated" || (dl.Compensates != "" && len(dl.Attempts) > 0) {
			began = true
		}
	}
	for _, dl := range m.Deliveries {
		sv := stepView{Delivery: dl, Replayable: dl.Status == "dead" && (dl.Compensates != "" || !began)}
		if dl.Response != nil {
			sv.Response = excerpt(dl.Response.Body)
		}
		d.Steps = append(d.Steps, sv)
	}
	return &view{Page: "message", Title: "Message " + shortID(id), Nav: "messages", Data: d,
		Events: "/ui/messages/" + id + "/events", Live: "swap"}, nil
}

type deadLettersData struct {
	Letters    []tapi.DeadLetter
	Routes     []string
	Targets    []string
	Route      string
	Target     string
	Cursor     string
	NextCursor string
	Total      int
}

func (u *UI) deadLetters(r *http.Request, _ *session) (*view, error) {
	ctx := r.Context()
	q := r.URL.Query()
	d := &deadLettersData{Route: q.Get("route"), Target: q.Get("target"), Cursor: q.Get("cursor"), Letters: []tapi.DeadLetter{}}
	routes, err := u.opts.Admin.Routes(ctx)
	if err != nil {
		return nil, err
	}
	for _, rt := range routes {
		d.Routes = append(d.Routes, rt.Name)
	}
	targets, err := u.opts.Admin.Targets(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		d.Targets = append(d.Targets, t.Name)
		d.Total += t.Queue.Dead
	}
	v := &view{Page: "dead-letters", Title: "Dead letters", Nav: "dead-letters", Data: d, Events: "/ui/events", Live: "notice"}
	if u.store() == nil || len(d.Route) > 256 || len(d.Target) > 256 {
		return v, nil
	}
	res, err := u.store().DeliveryList(ctx, &store.DeliveryListParams{Status: record.DeliveryDead, Route: d.Route, Target: d.Target, Cursor: d.Cursor, Limit: 50})
	if err != nil {
		if d.Cursor != "" {
			return nil, badInput("the page cursor is not valid: start from the first page")
		}
		return nil, err
	}
	for _, dl := range res.Deliveries {
		d.Letters = append(d.Letters, api.DeadLetterView(dl))
	}
	d.NextCursor = res.NextCursor
	return v, nil
}

// maxSelect is the most dead letters one form may act on (the admin API's cap).
const maxSelect = 1000

type confirmData struct {
	Action  string // replay or purge
	Letters []tapi.DeadLetter
	Missing int // selected ids that are no longer dead letters
}

// selected reads the chosen delivery ids of a dead-letters form.
func selected(r *http.Request) ([]string, error) {
	if err := r.ParseForm(); err != nil {
		return nil, badInput("the form could not be read")
	}
	ids := slices.Compact(slices.Sorted(slices.Values(r.PostForm["id"])))
	if len(ids) == 0 {
		return nil, badInput("Select at least one dead letter.")
	}
	if len(ids) > maxSelect {
		return nil, badInput(fmt.Sprintf("Select at most %d dead letters at a time.", maxSelect))
	}
	return ids, nil
}

// lookupDead returns the dead letters among ids, in the order of ids.
func (u *UI) lookupDead(ctx context.Context, ids []string) ([]tapi.DeadLetter, error) {
	var out []tapi.DeadLetter
	if u.store() == nil {
		return out, nil
	}
	for _, id := range ids {
		res, err := u.store().DeliveryList(ctx, &store.DeliveryListParams{ID: id, Status: record.DeliveryDead, Limit: 1})
		if err != nil {
			return nil, err
		}
		for _, d := range res.Deliveries {
			out = append(out, api.DeadLetterView(d))
		}
	}
	return out, nil
}

func (u *UI) confirmDeadLetters(w http.ResponseWriter, r *http.Request, _ *session) (*view, error) {
	action := r.PostFormValue("action")
	if action != "replay" && action != "purge" {
		return nil, badInput("Choose replay or purge.")
	}
	ids, err := selected(r)
	if err != nil {
		return nil, err
	}
	letters, err := u.lookupDead(r.Context(), ids)
	if err != nil {
		return nil, err
	}
	title := "Replay dead letters?"
	if action == "purge" {
		title = "Purge dead letters?"
	}
	return &view{Page: "confirm", Title: title, Nav: "dead-letters",
		Data: &confirmData{Action: action, Letters: letters, Missing: len(ids) - len(letters)}}, nil
}

type resultData struct {
	Action  string
	Done    int
	Letters []tapi.DeadLetter // the ones acted on (their state before)
	Skipped []tapi.ReplaySkip
}

func (u *UI) replayDeadLetters(w http.ResponseWriter, r *http.Request, _ *session) (*view, error) {
	ids, err := selected(r)
	if err != nil {
		return nil, err
	}
	before, err := u.lookupDead(r.Context(), ids)
	if err != nil {
		return nil, err
	}
	res, err := u.opts.Admin.ReplayDeadLetters(r.Context(), ids)
	if err != nil {
		return nil, err
	}
	d := &resultData{Action: "replay", Done: res.Replayed, Skipped: res.Skipped}
	d.Letters = only(before, res.IDs)
	d.Skipped = append(d.Skipped, notListed(ids, res.IDs, res.Skipped, "not a dead letter (any more)")...)
	return &view{Page: "result", Title: "Replayed", Nav: "dead-letters", Data: d}, nil
}

func (u *UI) purgeDeadLetters(w http.ResponseWriter, r *http.Request, _ *session) (*view, error) {
	ids, err := selected(r)
	if err != nil {
		return nil, err
	}
	before, err := u.lookupDead(r.Context(), ids)
	if err != nil {
		return nil, err
	}
	purged, err := u.opts.Admin.PurgeDeadLetters(r.Context(), ids)
	if err != nil {
		return nil, err
	}
	d := &resultData{Action: "purge", Done: len(purged), Letters: only(before, purged)}
	d.Skipped = notListed(ids, purged, nil, "not a dead letter (any more)")
	return &view{Page: "result", Title: "Purged", Nav: "dead-letters", Data: d}, nil
}

// only keeps the letters whose id is in ids.
func only(ls []tapi.DeadLetter, ids []string) []tapi.DeadLetter {
	var out []tapi.DeadLetter
	for _, l := range ls {
		if slices.Contains(ids, l.ID) {
			out = append(out, l)
		}
	}
	return out
}

// notListed returns the asked ids that are neither done nor skipped,
// with reason.
func notListed(asked, done []string, skipped []tapi.ReplaySkip, reason string) []tapi.ReplaySkip {
	var out []tapi.ReplaySkip
	for _, id := range asked {
		if slices.Contains(done, id) || slices.ContainsFunc(skipped, func(s tapi.ReplaySkip) bool { return s.ID == id }) {
			continue
		}
		out = append(out, tapi.ReplaySkip{ID: id, Reason: reason})
	}
	return out
}

type targetRow struct {
	tapi.Target
	P50, P99 float64 // ms; -1 when there are no attempts yet
	Count    uint64
}

func (u *UI) targets(r *http.Request, _ *session) (*view, error) {
	ts, err := u.opts.Admin.Targets(r.Context())
	if err != nil {
		return nil, err
	}
	lat := latencies(u.opts.Gatherer)
	rows := make([]targetRow, 0, len(ts))
	for _, t := range ts {
		row := targetRow{Target: t, P50: -1, P99: -1}
		if h, ok := lat[t.Name]; ok && h.count > 0 {
			row.P50, row.P99, row.Count = h.quantile(0.5)*1000, h.quantile(0.99)*1000, h.count
		}
		rows = append(rows, row)
	}
	return &view{Page: "targets", Title: "Targets", Nav: "targets", Data: rows, Events: "/ui/events", Live: "swap"}, nil
}

// replayDelivery replays one dead delivery from its message page, then
// shows the message again (where it is seen going back to work).
func (u *UI) replayDelivery(w http.ResponseWriter, r *http.Request, _ *session) (*view, error) {
	id := r.PathValue("id")
	letters, err := u.lookupDead(r.Context(), []string{id})
	if err != nil {
		return nil, err
	}
	if len(letters) == 0 {
		return nil, badInput("That delivery is not a dead letter (any more).")
	}
	res, err := u.opts.Admin.ReplayDeadLetters(r.Context(), []string{id})
	if err != nil {
		return nil, err
	}
	if res.Replayed == 0 {
		reason := "it is not a dead letter"
		if len(res.Skipped) > 0 {
			reason = res.Skipped[0].Reason
		}
		return nil, badInput("The delivery was not replayed: " + reason + ".")
	}
	http.Redirect(w, r, "/ui/messages/"+url.PathEscape(letters[0].MessageID)+"#d-"+url.PathEscape(id), http.StatusSeeOther)
	return nil, nil
}
