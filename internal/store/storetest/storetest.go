// Package storetest is the conformance suite that every store.Store must
// pass. A driver's test calls Run with a function that opens a fresh, empty
// store; the suite drives it only through the store.Store interface, so it
// holds no SQL and runs unchanged against SQLite and PostgreSQL.
//
// Rules the suite relies on:
//   - open is called once per subtest and returns an empty store; it
//     registers its own cleanup (t.Cleanup(s.Close)). Close may be called
//     twice. Subtests run in parallel (t.Parallel), so open must be safe
//     to call from several goroutines.
//   - All time comes from the params' Now fields; the suite never sleeps.
//     Times use microsecond precision, the finest PostgreSQL keeps.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// Opener opens a fresh, empty store for one subtest.
type Opener func(t *testing.T) store.Store

// Run runs the whole conformance suite against the stores that open makes.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"InsertGet", testInsertGet},
		{"Idempotency", testIdempotency},
		{"GroupCommit", testGroupCommit},
		{"Claim", testClaim},
		{"ClaimConcurrent", testClaimConcurrent},
		{"LeaseExpiry", testLeaseExpiry},
		{"Complete", testComplete},
		{"CompleteErrors", testCompleteErrors},
		{"Dependencies", testDependencies},
		{"Postpone", testPostpone},
		{"DeadLetters", testDeadLetters},
		{"Replay", testReplay},
		{"ReplayFilter", testReplayFilter},
		{"Stats", testStats},
		{"MessageList", testMessageList},
		{"Closed", testClosed},
		{"Saga", RunSaga},
		{"SagaTable", testSagaTable},
		{"Fencing", testFencing},
		{"InputChecks", testInputChecks},
		{"Discard", testDiscard},
		{"MayHave", testMayHave},
		{"ClaimNext", testClaimNext},
		{"InsertLease", testInsertLease},
		{"Optional", testOptional},
		{"Purge", RunPurge},
		{"TraceContext", testTraceContext},
		{"OnComplete", testOnComplete},
	}
	// Every case opens its own stores and sets its own clock, so the cases
	// run side by side.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open)
		})
	}
}

// t0 is the suite's epoch: any fixed instant works, since time is injected.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)

// lease is the lease most subtests claim with.
const lease = 30 * time.Second

func at(d time.Duration) *time.Time {
	t := t0.Add(d)
	return &t
}

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// msg builds a message with a JSON body and a few headers.
func msg(id, route string) record.Message {
	body := []byte(`{"id":"` + id + `"}`)
	return record.Message{
		ID:       id,
		Route:    route,
		Body:     body,
		BodyHash: hashOf(body),
		Headers:  map[string][]string{"Content-Type": {"application/json"}},
	}
}

// due builds a scheduled delivery due at t0+offset.
func due(id, step, target string, offset time.Duration) record.Delivery {
	return record.Delivery{
		ID: id, Step: step, Target: target, Required: true,
		Status: record.DeliveryScheduled, NextAttemptAt: t0.Add(offset),
	}
}

// waiting builds a delivery that waits for after.
func waiting(id, step, target string, after ...string) record.Delivery {
	return record.Delivery{
		ID: id, Step: step, Target: target, Required: true, After: after,
		Status: record.DeliveryWaiting,
	}
}

func insert(t *testing.T, s store.Store, now *time.Time, m record.Message, ds ...record.Delivery) *store.MessageInsertResult {
	t.Helper()
	res, err := s.MessageInsert(context.Background(), &store.MessageInsertParams{Message: m, Deliveries: ds, Now: now})
	if err != nil {
		t.Fatalf("insert %s: %v", m.ID, err)
	}
	if res == nil {
		t.Fatalf("insert %s: nil result", m.ID)
	}
	return res
}

func claim(t *testing.T, s store.Store, target, owner string, limit int, leaseFor time.Duration, now *time.Time) []record.Delivery {
	t.Helper()
	ds, err := s.DeliveryClaim(context.Background(), &store.DeliveryClaimParams{
		Target: target, Limit: limit, LeaseFor: leaseFor, Owner: owner, Now: now,
	})
	if err != nil {
		t.Fatalf("claim %s: %v", target, err)
	}
	return ds
}

// claimOne claims exactly one delivery of target, and fails when the next
// due one is not id.
func claimOne(t *testing.T, s store.Store, target, owner, id string, now *time.Time) record.Delivery {
	t.Helper()
	ds := claim(t, s, target, owner, 1, lease, now)
	if len(ds) != 1 || ds[0].ID != id {
		t.Fatalf("claim %s: got %v, want [%s]", target, ids(ds), id)
	}
	return ds[0]
}

// completeParams builds a complete call for a claimed delivery, with the
// constructors the engine uses.
func completeParams(d record.Delivery, status record.DeliveryStatus, now *time.Time) *store.DeliveryCompleteParams {
	l := store.LeaseOf(&d)
	a := record.Attempt{N: d.Attempts + 1, StartedAt: *now, Duration: 15 * time.Millisecond}
	var p *store.DeliveryCompleteParams
	switch status {
	case record.DeliverySucceeded:
		a.HTTPStatus, a.Outcome = 200, record.OutcomeSuccess
		p = store.CompleteSucceeded(l, a, store.Response{Status: 200, Body: []byte(`{"ok":true}`)})
	case record.DeliveryScheduled:
		a.HTTPStatus, a.Outcome, a.Error = 503, record.OutcomeTransient, "503 Service Unavailable"
		p = store.CompleteRetry(l, a, store.Response{Status: 503}, now.Add(10*time.Second), "503 Service Unavailable")
	case record.DeliveryDead:
		a.HTTPStatus, a.Outcome, a.Error = 400, record.OutcomePermanent, "400 Bad Request"
		p = store.CompleteDead(l, a, store.Response{Status: 400}, "400 Bad Request")
	default:
		p = store.CompleteSucceeded(l, a, store.Response{})
		p.Status = status // a combination no constructor builds, for input checks
	}
	p.Now = now
	return p
}

// postpone gives the claim of d back, due at next.
func postpone(s store.Store, d record.Delivery, next time.Time, reason string, now *time.Time) error {
	p := store.Postpone(store.LeaseOf(&d), next, reason)
	p.Now = now
	return s.DeliveryPostpone(context.Background(), p)
}

func complete(t *testing.T, s store.Store, d record.Delivery, status record.DeliveryStatus, now *time.Time) *store.DeliveryCompleteResult {
	t.Helper()
	res, err := s.DeliveryComplete(context.Background(), completeParams(d, status, now))
	if err != nil {
		t.Fatalf("complete %s as %s: %v", d.ID, status, err)
	}
	if res == nil {
		t.Fatalf("complete %s: nil result", d.ID)
	}
	return res
}

func get(t *testing.T, s store.Store, id string) *record.MessageDetail {
	t.Helper()
	md, err := s.MessageGet(context.Background(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return md
}

// delivery returns the delivery with id from a fresh MessageGet.
func delivery(t *testing.T, s store.Store, messageID, id string) record.Delivery {
	t.Helper()
	for _, d := range get(t, s, messageID).Deliveries {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("message %s has no delivery %s", messageID, id)
	return record.Delivery{}
}

func ids(ds []record.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func messageIDs(ms []record.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func wantIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func wantStatus(t *testing.T, s store.Store, messageID string, want record.MessageStatus) {
	t.Helper()
	if got := get(t, s, messageID).Message.Status; got != want {
		t.Fatalf("message %s status: got %s, want %s", messageID, got, want)
	}
}

func wantDeliveryStatus(t *testing.T, s store.Store, messageID, id string, want record.DeliveryStatus) record.Delivery {
	t.Helper()
	d := delivery(t, s, messageID, id)
	if d.Status != want {
		t.Fatalf("delivery %s status: got %s, want %s", id, d.Status, want)
	}
	return d
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// sameHeaders compares header maps, treating nil and empty alike.
func sameHeaders(a, b map[string][]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return maps.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// checkDelivery compares the fields a caller sets or the store derives.
func checkDelivery(t *testing.T, got, want record.Delivery) {
	t.Helper()
	var diffs []string
	diff := func(field string, g, w any) { diffs = append(diffs, fmt.Sprintf("%s: got %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		diff("ID", got.ID, want.ID)
	}
	if got.MessageID != want.MessageID {
		diff("MessageID", got.MessageID, want.MessageID)
	}
	if got.Route != want.Route {
		diff("Route", got.Route, want.Route)
	}
	if got.Step != want.Step {
		diff("Step", got.Step, want.Step)
	}
	if got.Target != want.Target {
		diff("Target", got.Target, want.Target)
	}
	if !slices.Equal(got.After, want.After) && len(got.After)+len(want.After) > 0 {
		diff("After", got.After, want.After)
	}
	if got.Required != want.Required {
		diff("Required", got.Required, want.Required)
	}
	if got.Status != want.Status {
		diff("Status", got.Status, want.Status)
	}
	if got.Attempts != want.Attempts {
		diff("Attempts", got.Attempts, want.Attempts)
	}
	if !got.NextAttemptAt.Equal(want.NextAttemptAt) {
		diff("NextAttemptAt", got.NextAttemptAt, want.NextAttemptAt)
	}
	if got.LeaseOwner != want.LeaseOwner {
		diff("LeaseOwner", got.LeaseOwner, want.LeaseOwner)
	}
	if got.LastError != want.LastError {
		diff("LastError", got.LastError, want.LastError)
	}
	if got.ResponseStatus != want.ResponseStatus {
		diff("ResponseStatus", got.ResponseStatus, want.ResponseStatus)
	}
	if !bytes.Equal(got.ResponseBody, want.ResponseBody) {
		diff("ResponseBody", string(got.ResponseBody), string(want.ResponseBody))
	}
	if !sameHeaders(got.ResponseHeaders, want.ResponseHeaders) {
		diff("ResponseHeaders", got.ResponseHeaders, want.ResponseHeaders)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		diff("CreatedAt", got.CreatedAt, want.CreatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		diff("UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	}
	if got.Replays != want.Replays {
		diff("Replays", got.Replays, want.Replays)
	}
	if got.AttemptsAtReplay != want.AttemptsAtReplay {
		diff("AttemptsAtReplay", got.AttemptsAtReplay, want.AttemptsAtReplay)
	}
	if !got.ReplayedAt.Equal(want.ReplayedAt) {
		diff("ReplayedAt", got.ReplayedAt, want.ReplayedAt)
	}
	if len(diffs) > 0 {
		t.Fatalf("delivery %s differs:\n  %s", want.ID, joinLines(diffs))
	}
}

func joinLines(s []string) string {
	var b bytes.Buffer
	for i, l := range s {
		if i > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(l)
	}
	return b.String()
}

// runWithin runs fn and fails the test when it has not returned within d:
// a closed store must answer, never hang.
func runWithin(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// waitFor polls cond until it holds, and fails the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}
