package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

func testInsertGet(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	body := []byte("{\"total\":12}\x00\xff binary too")
	m := record.Message{
		ID: "m1", Route: "orders", IdempotencyKey: "k1", Body: body, BodyHash: hashOf(body),
		Status:  record.MessageSucceeded, // ignored: a new message is accepted
		Headers: map[string][]string{"Content-Type": {"application/json"}, "X-Multi": {"a", "b"}},
		Query:   map[string][]string{"q": {"1", "2"}},
	}
	charge := due("d1", "charge", "payments", 0)
	reserve := waiting("d2", "reserve", "inventory", "charge")
	email := due("d3", "email", "mailer", time.Minute)
	email.Required = false

	res := insert(t, s, at(0), m, charge, reserve, email)
	if res.Existing {
		t.Fatal("a new message came back as Existing")
	}
	if res.Message.ID != "m1" || res.Message.Status != record.MessageAccepted {
		t.Fatalf("insert result: got id %q status %q, want m1 accepted", res.Message.ID, res.Message.Status)
	}
	wantTime(t, "result CreatedAt", res.Message.CreatedAt, t0)

	md := get(t, s, "m1")
	gm := md.Message
	if gm.ID != "m1" || gm.Route != "orders" || gm.Status != record.MessageAccepted ||
		gm.IdempotencyKey != "k1" || gm.BodyHash != m.BodyHash {
		t.Fatalf("message: got %+v", gm)
	}
	if !bytes.Equal(gm.Body, body) {
		t.Fatalf("body: got %q, want %q", gm.Body, body)
	}
	if !sameHeaders(gm.Headers, m.Headers) || !sameHeaders(gm.Query, m.Query) {
		t.Fatalf("headers/query: got %v %v, want %v %v", gm.Headers, gm.Query, m.Headers, m.Query)
	}
	wantTime(t, "CreatedAt", gm.CreatedAt, t0)
	wantTime(t, "UpdatedAt", gm.UpdatedAt, t0)

	// Ordered by creation, then step.
	wantIDs(t, "deliveries", ids(md.Deliveries), []string{"d1", "d3", "d2"})
	fill := func(d record.Delivery) record.Delivery {
		d.MessageID, d.Route, d.CreatedAt, d.UpdatedAt = "m1", "orders", t0, t0
		return d
	}
	checkDelivery(t, md.Deliveries[0], fill(charge))
	checkDelivery(t, md.Deliveries[1], fill(email))
	checkDelivery(t, md.Deliveries[2], fill(reserve))
	if n := len(md.Attempts["d1"]) + len(md.Attempts["d2"]) + len(md.Attempts["d3"]); n != 0 {
		t.Fatalf("attempts before any: %d", n)
	}

	// Claim and complete d1 with every result field set.
	got := claimOne(t, s, "payments", "w1", "d1", at(time.Second))
	wantClaimed := fill(charge)
	wantClaimed.Status, wantClaimed.LeaseOwner, wantClaimed.LeaseToken = record.DeliveryRunning, "w1", 1
	wantClaimed.NextAttemptAt, wantClaimed.UpdatedAt = t0.Add(time.Second+lease), t0.Add(time.Second)
	checkDelivery(t, got, wantClaimed)

	attempt := record.Attempt{
		DeliveryID: "d1", N: 1, StartedAt: t0.Add(time.Second), Duration: 1234567 * time.Nanosecond,
		HTTPStatus: 201, Outcome: record.OutcomeSuccess,
	}
	cres, err := s.DeliveryComplete(ctx, &store.DeliveryCompleteParams{
		DeliveryID: "d1", Owner: "w1", LeaseToken: got.LeaseToken, Attempt: attempt, Status: record.DeliverySucceeded,
		ResponseStatus: 201, ResponseBody: []byte(`{"id":"c1"}`),
		ResponseHeaders: map[string][]string{"Content-Type": {"application/json"}, "X-Req": {"a", "b"}},
		Now:             at(2 * time.Second),
	})
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if cres.MessageID != "m1" || cres.MessageStatus != record.MessageRunning {
		t.Fatalf("complete result: got %q %q, want m1 running", cres.MessageID, cres.MessageStatus)
	}
	wantReady := fill(reserve)
	wantReady.Status, wantReady.NextAttemptAt, wantReady.UpdatedAt = record.DeliveryScheduled, t0.Add(2*time.Second), t0.Add(2*time.Second)
	if len(cres.Ready) != 1 {
		t.Fatalf("ready: got %v, want [d2]", ids(cres.Ready))
	}
	checkDelivery(t, cres.Ready[0], wantReady)

	md = get(t, s, "m1")
	if md.Message.Status != record.MessageRunning {
		t.Fatalf("message status: got %s, want running", md.Message.Status)
	}
	wantTime(t, "message UpdatedAt", md.Message.UpdatedAt, t0.Add(2*time.Second))
	wantDone := fill(charge)
	wantDone.Status, wantDone.Attempts, wantDone.UpdatedAt = record.DeliverySucceeded, 1, t0.Add(2*time.Second)
	wantDone.ResponseStatus, wantDone.ResponseBody = 201, []byte(`{"id":"c1"}`)
	wantDone.ResponseHeaders = map[string][]string{"Content-Type": {"application/json"}, "X-Req": {"a", "b"}}
	wantDone.NextAttemptAt = md.Deliveries[0].NextAttemptAt // not defined once final
	checkDelivery(t, md.Deliveries[0], wantDone)
	checkDelivery(t, md.Deliveries[2], wantReady)
	if as := md.Attempts["d1"]; len(as) != 1 || !sameAttempt(as[0], attempt) {
		t.Fatalf("attempts of d1: got %+v, want [%+v]", as, attempt)
	}

	// A retry keeps its error text and status code.
	got = claimOne(t, s, "mailer", "w2", "d3", at(time.Minute))
	p := completeParams(got, record.DeliveryScheduled, at(time.Minute+time.Second))
	if _, err := s.DeliveryComplete(ctx, p); err != nil {
		t.Fatalf("complete retry: %v", err)
	}
	md = get(t, s, "m1")
	wantRetry := fill(email)
	wantRetry.Attempts, wantRetry.LastError, wantRetry.ResponseStatus = 1, p.LastError, 503
	wantRetry.NextAttemptAt, wantRetry.UpdatedAt = p.NextAttemptAt, t0.Add(time.Minute+time.Second)
	checkDelivery(t, md.Deliveries[1], wantRetry)
	if as := md.Attempts["d3"]; len(as) != 1 || !sameAttempt(as[0], p.Attempt) {
		t.Fatalf("attempts of d3: got %+v, want [%+v]", as, p.Attempt)
	}

	_, err = s.MessageGet(ctx, "nope")
	wantErr(t, "get unknown", err, store.ErrNotFound)
}

func sameAttempt(a, b record.Attempt) bool {
	return a.DeliveryID == b.DeliveryID && a.N == b.N && a.StartedAt.Equal(b.StartedAt) &&
		a.Duration == b.Duration && a.HTTPStatus == b.HTTPStatus && a.Outcome == b.Outcome && a.Error == b.Error
}

func testIdempotency(t *testing.T, open Opener) {
	ctx := context.Background()
	keyed := func(id, route, key, body string) record.Message {
		m := msg(id, route)
		m.IdempotencyKey, m.Body, m.BodyHash = key, []byte(body), hashOf([]byte(body))
		return m
	}

	t.Run("same body", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), keyed("m1", "r", "k", "a"), due("d1", "s", "t", 0))
		res := insert(t, s, at(time.Second), keyed("m2", "r", "k", "a"), due("d2", "s", "t", 0))
		if !res.Existing || res.Message.ID != "m1" {
			t.Fatalf("repeat: got existing=%v id=%q, want existing m1", res.Existing, res.Message.ID)
		}
		wantTime(t, "existing CreatedAt", res.Message.CreatedAt, t0)
		_, err := s.MessageGet(ctx, "m2")
		wantErr(t, "get the repeat", err, store.ErrNotFound)
		list, err := s.DeliveryList(ctx, &store.DeliveryListParams{Target: "t"})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		wantIDs(t, "deliveries", ids(list.Deliveries), []string{"d1"})
	})

	t.Run("other body", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), keyed("m1", "r", "k", "a"), due("d1", "s", "t", 0))
		res, err := s.MessageInsert(ctx, &store.MessageInsertParams{
			Message: keyed("m2", "r", "k", "b"), Deliveries: []record.Delivery{due("d2", "s", "t", 0)}, Now: at(time.Second),
		})
		wantErr(t, "other body", err, store.ErrIdempotencyConflict)
		if res == nil || !res.Existing || res.Message.ID != "m1" {
			t.Fatalf("conflict result: got %+v, want the existing m1", res)
		}
		_, err = s.MessageGet(ctx, "m2")
		wantErr(t, "get the conflict", err, store.ErrNotFound)
	})

	t.Run("other route", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), keyed("m1", "r1", "k", "a"), due("d1", "s", "t", 0))
		res := insert(t, s, at(0), keyed("m2", "r2", "k", "b"), due("d2", "s", "t", 0))
		if res.Existing || res.Message.ID != "m2" {
			t.Fatalf("other route: got existing=%v id=%q, want new m2", res.Existing, res.Message.ID)
		}
	})

	t.Run("no key", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), keyed("m1", "r", "", "a"), due("d1", "s", "t", 0))
		res := insert(t, s, at(0), keyed("m2", "r", "", "a"), due("d2", "s", "t", 0))
		if res.Existing {
			t.Fatal("messages without a key are never repeats")
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		s := open(t)
		const n = 50
		var wg sync.WaitGroup
		results := make([]*store.MessageInsertResult, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				results[i], errs[i] = s.MessageInsert(ctx, &store.MessageInsertParams{
					Message:    keyed(fmt.Sprintf("m%02d", i), "r", "k", "same"),
					Deliveries: []record.Delivery{due(fmt.Sprintf("d%02d", i), "s", "t", 0)},
					Now:        at(0),
				})
			})
		}
		wg.Wait()
		created, first := 0, ""
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("insert %d: %v", i, errs[i])
			}
			if !results[i].Existing {
				created++
				first = results[i].Message.ID
			}
		}
		if created != 1 {
			t.Fatalf("created %d messages, want 1", created)
		}
		for i := range n {
			if results[i].Message.ID != first {
				t.Fatalf("insert %d answered %q, want %q", i, results[i].Message.ID, first)
			}
		}
		list, err := s.MessageList(ctx, &store.MessageListParams{Route: "r"})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		wantIDs(t, "messages", messageIDs(list.Messages), []string{first})
		dl, err := s.DeliveryList(ctx, &store.DeliveryListParams{Target: "t"})
		if err != nil {
			t.Fatalf("list deliveries: %v", err)
		}
		if len(dl.Deliveries) != 1 {
			t.Fatalf("deliveries: got %v, want one", ids(dl.Deliveries))
		}
	})
}

func testGroupCommit(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("m%03d", i)
			_, errs[i] = s.MessageInsert(ctx, &store.MessageInsertParams{
				Message: msg(id, "gc"),
				Deliveries: []record.Delivery{
					due(id+"-a", "a", "ta", 0),
					due(id+"-b", "b", "tb", 0),
				},
				Now: at(time.Duration(i) * time.Millisecond),
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	list, err := s.MessageList(ctx, &store.MessageListParams{Route: "gc", Limit: 1000})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list.Messages) != n {
		t.Fatalf("listed %d messages, want %d", len(list.Messages), n)
	}
	for i := range n {
		md := get(t, s, fmt.Sprintf("m%03d", i))
		if len(md.Deliveries) != 2 {
			t.Fatalf("message %s has %d deliveries, want 2", md.Message.ID, len(md.Deliveries))
		}
	}
	stats := statsByTarget(t, s, at(time.Hour))
	if stats["ta"].Due != n || stats["tb"].Due != n {
		t.Fatalf("due: got ta=%d tb=%d, want %d each", stats["ta"].Due, stats["tb"].Due, n)
	}
}

func testMessageList(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	// Nine messages a second apart; m0, m4, m8 succeed, m2, m6 fail, the
	// others stay accepted. r1 holds m0, m3, m6.
	for i := range 9 {
		route, target := "r2", "idle"
		if i%3 == 0 {
			route = "r1"
		}
		switch i {
		case 0, 4, 8:
			target = "ok"
		case 2, 6:
			target = "bad"
		}
		id := fmt.Sprintf("m%d", i)
		m := msg(id, route)
		if i == 1 || i == 5 {
			m.IdempotencyKey = fmt.Sprintf("key-%d", i)
		}
		insert(t, s, at(time.Duration(i)*time.Second), m, due("d"+id[1:], "s", target, time.Duration(i)*time.Second))
	}
	for _, d := range claim(t, s, "ok", "w", 10, lease, at(time.Hour)) {
		complete(t, s, d, record.DeliverySucceeded, at(time.Hour))
	}
	for _, d := range claim(t, s, "bad", "w", 10, lease, at(time.Hour)) {
		complete(t, s, d, record.DeliveryDead, at(time.Hour))
	}

	// No params at all is the first page of everything, not a panic.
	if all, err := s.MessageList(ctx, nil); err != nil || len(all.Messages) != 9 {
		t.Fatalf("MessageList(nil) = %v, %v; want the nine messages", all, err)
	}

	tests := []struct {
		name string
		p    store.MessageListParams
		want []string
	}{
		{"all", store.MessageListParams{}, []string{"m8", "m7", "m6", "m5", "m4", "m3", "m2", "m1", "m0"}},
		{"route", store.MessageListParams{Route: "r1"}, []string{"m6", "m3", "m0"}},
		{"succeeded", store.MessageListParams{Status: record.MessageSucceeded}, []string{"m8", "m4", "m0"}},
		{"failed", store.MessageListParams{Status: record.MessageFailed}, []string{"m6", "m2"}},
		{"accepted", store.MessageListParams{Status: record.MessageAccepted}, []string{"m7", "m5", "m3", "m1"}},
		{"route and status", store.MessageListParams{Route: "r1", Status: record.MessageFailed}, []string{"m6"}},
		{"no match", store.MessageListParams{Route: "nope"}, nil},
		{"idempotency key", store.MessageListParams{IdempotencyKey: "key-5"}, []string{"m5"}},
		{"unknown idempotency key", store.MessageListParams{IdempotencyKey: "key-2"}, nil},
		{"created between", store.MessageListParams{CreatedFrom: t0.Add(2 * time.Second), CreatedBefore: t0.Add(5 * time.Second)}, []string{"m4", "m3", "m2"}},
		{"created from, route", store.MessageListParams{Route: "r1", CreatedFrom: t0.Add(3 * time.Second)}, []string{"m6", "m3"}},
		{"created before", store.MessageListParams{CreatedBefore: t0.Add(time.Second)}, []string{"m0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			res, err := s.MessageList(ctx, &p)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			wantIDs(t, "messages", messageIDs(res.Messages), tt.want)
			if res.NextCursor != "" {
				t.Fatalf("one page but NextCursor %q", res.NextCursor)
			}
			for _, m := range res.Messages {
				if m.Route == "" || m.Status == "" || m.CreatedAt.IsZero() {
					t.Fatalf("listed message lacks fields: %+v", m)
				}
			}
			for _, limit := range []int{1, 2, 4} {
				p := tt.p
				p.Limit = limit
				got := walkMessages(t, s, p)
				wantIDs(t, fmt.Sprintf("pages of %d", limit), got, tt.want)
			}
		})
	}

	t.Run("ties and default limit", func(t *testing.T) {
		// 60 messages with the same CreatedAt: the cursor must still walk
		// each exactly once.
		var wg sync.WaitGroup
		var failed atomic.Int32
		for i := range 60 {
			wg.Go(func() {
				id := fmt.Sprintf("tie%02d", i)
				_, err := s.MessageInsert(ctx, &store.MessageInsertParams{
					Message: msg(id, "tie"), Deliveries: []record.Delivery{due("d"+id, "s", "idle", 0)}, Now: at(time.Hour),
				})
				if err != nil {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Fatalf("%d inserts failed", failed.Load())
		}
		res, err := s.MessageList(ctx, &store.MessageListParams{Route: "tie"})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(res.Messages) != 50 || res.NextCursor == "" {
			t.Fatalf("default page: got %d messages, cursor %q; want 50 and a cursor", len(res.Messages), res.NextCursor)
		}
		all := walkMessages(t, s, store.MessageListParams{Route: "tie", Limit: 7})
		if len(all) != 60 {
			t.Fatalf("walked %d messages, want 60", len(all))
		}
		sorted := slices.Clone(all)
		slices.Sort(sorted)
		if len(slices.Compact(sorted)) != 60 {
			t.Fatalf("walk returned duplicates: %v", all)
		}
	})
}

// walkMessages follows NextCursor to the end and returns every id seen.
func walkMessages(t *testing.T, s store.Store, p store.MessageListParams) []string {
	t.Helper()
	var out []string
	for range 1000 {
		res, err := s.MessageList(context.Background(), &p)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(res.Messages) > p.Limit {
			t.Fatalf("page of %d messages with Limit %d", len(res.Messages), p.Limit)
		}
		out = append(out, messageIDs(res.Messages)...)
		if res.NextCursor == "" {
			return out
		}
		p.Cursor = res.NextCursor
	}
	t.Fatal("cursor never ended")
	return nil
}

func testClosed(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("calls after close", func(t *testing.T) {
		s := open(t)
		insert(t, s, at(0), msg("m1", "r"), due("d1", "s", "t", 0))
		d := claimOne(t, s, "t", "w", "d1", at(0))
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		calls := []struct {
			name string
			call func() error
		}{
			{"MessageInsert", func() error {
				_, err := s.MessageInsert(ctx, &store.MessageInsertParams{Message: msg("m2", "r"), Now: at(0)})
				return err
			}},
			{"MessageGet", func() error { _, err := s.MessageGet(ctx, "m1"); return err }},
			{"MessageList", func() error { _, err := s.MessageList(ctx, &store.MessageListParams{}); return err }},
			{"DeliveryClaim", func() error {
				_, err := s.DeliveryClaim(ctx, &store.DeliveryClaimParams{Target: "t", Limit: 1, LeaseFor: lease, Owner: "w", Now: at(time.Hour)})
				return err
			}},
			{"DeliveryComplete", func() error {
				_, err := s.DeliveryComplete(ctx, completeParams(d, record.DeliverySucceeded, at(time.Second)))
				return err
			}},
			{"DeliveryPostpone", func() error {
				return s.DeliveryPostpone(ctx, &store.DeliveryPostponeParams{DeliveryID: "d1", Owner: "w", LeaseToken: 1, NextAttemptAt: t0, Now: at(0)})
			}},
			{"DeliveryList", func() error { _, err := s.DeliveryList(ctx, &store.DeliveryListParams{}); return err }},
			{"DeliveryReplay", func() error { _, err := s.DeliveryReplay(ctx, &store.DeliveryReplayParams{Now: at(0)}); return err }},
			{"DeliveryStats", func() error { _, err := s.DeliveryStats(ctx, at(0)); return err }},
			{"Ping", func() error { return s.Ping(ctx) }},
		}
		for _, c := range calls {
			runWithin(t, 10*time.Second, c.name, func() {
				if err := c.call(); err == nil {
					t.Errorf("%s after Close: no error", c.name)
				}
			})
		}
		runWithin(t, 10*time.Second, "second Close", func() { _ = s.Close() })
	})

	t.Run("close during writes", func(t *testing.T) {
		// Writers racing Close all get an answer: nil (committed) or an error.
		s := open(t)
		var wg sync.WaitGroup
		var ok atomic.Int64
		start := make(chan struct{})
		for g := range 16 {
			wg.Go(func() {
				<-start
				for i := 0; ; i++ {
					id := fmt.Sprintf("g%02d-%05d", g, i)
					_, err := s.MessageInsert(ctx, &store.MessageInsertParams{
						Message: msg(id, "r"), Deliveries: []record.Delivery{due("d"+id, "s", "t", 0)}, Now: at(0),
					})
					if err != nil {
						return
					}
					ok.Add(1)
				}
			})
		}
		close(start)
		waitFor(t, 10*time.Second, "50 inserts", func() bool { return ok.Load() >= 50 })
		runWithin(t, 10*time.Second, "Close with writers", func() {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		runWithin(t, 10*time.Second, "writers after Close", wg.Wait)
	})
}

func statsByTarget(t *testing.T, s store.Store, now *time.Time) map[string]store.TargetStats {
	t.Helper()
	stats, err := s.DeliveryStats(context.Background(), now)
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	out := map[string]store.TargetStats{}
	for _, st := range stats {
		if _, dup := out[st.Target]; dup {
			t.Fatalf("stats list target %s twice", st.Target)
		}
		out[st.Target] = st
	}
	return out
}
