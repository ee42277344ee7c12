package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tandem-run/tandem/bench/chaos/history"
	"github.com/tandem-run/tandem/client"
)

// drainReport says how the backlog drained.
type drainReport struct {
	took     time.Duration
	drained  bool
	replayed int    // dead letters replayed while draining
	left     string // what was still pending at the deadline
}

// drain waits until no message is accepted or running and no dead letter
// is left that may be replayed, replaying those it finds: dead steps of
// the plain route, and dead compensations (a saga's dead forward steps
// stay dead: once compensation began they must not run again). It gives
// up after within.
func drain(ctx context.Context, c *cluster, within time.Duration) drainReport {
	start := time.Now()
	deadline := start.Add(within)
	var rep drainReport
	quiet := 0
	for i := 0; ; i++ {
		api := client.New(c.live(i), "")
		pending, err := pendingMessages(ctx, api)
		replay, derr := replayable(ctx, api)
		if err == nil && derr == nil {
			if pending == "" && len(replay) == 0 {
				quiet++
				if quiet == 2 {
					rep.drained, rep.took = true, time.Since(start)
					return rep
				}
			} else {
				quiet = 0
				rep.left = pending
			}
			if len(replay) > 0 {
				ids, err := api.Replay(ctx, client.ReplayRequest{IDs: replay})
				if err == nil {
					rep.replayed += len(ids)
				}
				rep.left = fmt.Sprintf("%s; %d dead letters to replay", pending, len(replay))
			}
		} else {
			rep.left = fmt.Sprintf("admin API: %v %v", err, derr)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			rep.took = time.Since(start)
			return rep
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// pendingMessages names the statuses that still have messages ("" when
// none do).
func pendingMessages(ctx context.Context, api *client.Client) (string, error) {
	var left []string
	for _, st := range []string{"accepted", "running"} {
		ms, _, err := api.Messages(ctx, client.ListOptions{Status: st, Limit: 1})
		if err != nil {
			return "", err
		}
		if len(ms) > 0 {
			left = append(left, st)
		}
	}
	return strings.Join(left, ", "), nil
}

// replayable lists the dead letters the drain replays.
func replayable(ctx context.Context, api *client.Client) ([]string, error) {
	var ids []string
	cursor := ""
	for {
		ds, next, err := api.DeadLetters(ctx, client.ListOptions{Limit: 1000, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.Route == "orders" || strings.HasSuffix(d.Step, history.CompensationSuffix) {
				ids = append(ids, d.ID)
			}
		}
		if next == "" || len(ids) >= 1000 {
			return ids[:min(len(ids), 1000)], nil
		}
		cursor = next
	}
}

// readAll reads every message with its deliveries and attempts.
func readAll(ctx context.Context, api *client.Client) ([]history.Message, error) {
	var ids []string
	cursor := ""
	for {
		ms, next, err := api.Messages(ctx, client.ListOptions{Limit: 1000, Cursor: cursor})
		if err != nil {
			return nil, fmt.Errorf("list messages: %w", err)
		}
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	out := make([]history.Message, len(ids))
	errs := make([]error, len(ids))
	work := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				m, err := api.Message(ctx, ids[i])
				if err != nil {
					errs[i] = fmt.Errorf("read message %s: %w", ids[i], err)
					continue
				}
				out[i] = toHistory(m)
			}
		}()
	}
	for i := range ids {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func toHistory(m *client.Message) history.Message {
	hm := history.Message{ID: m.ID, Route: m.Route, Status: m.Status, IdempotencyKey: m.IdempotencyKey}
	for _, d := range m.Deliveries {
		hd := history.Delivery{Step: d.Step, Status: d.Status, Replays: d.Replays}
		for _, a := range d.Attempts {
			hd.Attempts = append(hd.Attempts, history.Attempt{N: a.N, Start: a.StartedAt,
				Duration: time.Duration(a.DurationMS) * time.Millisecond, HTTPStatus: a.HTTPStatus, Outcome: a.Outcome})
		}
		hm.Deliveries = append(hm.Deliveries, hd)
	}
	return hm
}
