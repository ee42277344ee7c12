package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/tandem-run/tandem/internal/record"
)

// DrainParams configure Drain.
type DrainParams struct {
	// Window bounds the drain: deliveries that become due within Window of
	// the start (a retry, a step whose after steps finished) are delivered
	// too; at its end no more are claimed, and the attempts in flight are
	// waited for. Default 30s.
	Window time.Duration
}

// DrainResult says what a Drain did and what it left.
type DrainResult struct {
	// Claimed is how many deliveries its own claims took (an engine may
	// also run the next due delivery straight after a result).
	Claimed int
	// Due counts deliveries of the configured targets still due at the end:
	// not drained within the window (a backlog larger than the window, a
	// breaker open, the store away).
	Due int
	// Later counts deliveries scheduled after the window (retries that
	// the next run takes).
	Later int
	// Waiting counts deliveries still waiting on their after steps.
	Waiting int
	// Running counts deliveries leased by another worker.
	Running int
	// Dead counts the dead letters of the configured targets.
	Dead int
}

// Drain delivers what is due and returns, for `tandem worker --once` and
// scheduled functions: it claims due deliveries of every target through
// the same gates and attempts as the claim loops, until nothing is due,
// nothing of its own is in flight, and nothing becomes due before the
// window ends; or until the window ends (then the attempts in flight are
// waited for, bounded by their total timeouts). It runs in the caller's
// goroutine instead of the claim loops; Start and Drain exclude each
// other. ctx ending cancels the attempts in flight; their deliveries are
// given back uncounted.
//
// Deliveries leased by another worker are left to it. Drain does not
// close the store; call Shutdown after it as after Start.
func (e *Engine) Drain(ctx context.Context, p DrainParams) (*DrainResult, error) {
	if e.store == nil {
		return &DrainResult{}, nil
	}
	if !e.started.CompareAndSwap(false, true) {
		return nil, errors.New("engine: already started")
	}
	if p.Window <= 0 {
		p.Window = 30 * time.Second
	}
	e.discardStranded(ctx)
	// An attempt's context is the engine's hard context; tie it to ctx.
	stop := context.AfterFunc(ctx, e.hardStop)
	defer stop()

	res := &DrainResult{}
	end := e.opts.Now().Add(p.Window)
	runners := make([]*targetRunner, 0, len(e.cur().targets))
	cases := make([]reflect.SelectCase, 0, len(e.cur().targets)+2)
	for _, tr := range e.cur().targets {
		runners = append(runners, tr)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(tr.wakeCh)})
	}
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
	timerCase := len(cases)
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv})
	var storeErr error
	for ctx.Err() == nil {
		now := e.opts.Now().UTC()
		open := now.Before(end)
		claimed := 0
		var wait time.Duration
		if open {
			for _, tr := range runners {
				want, w := tr.admit(now)
				if w > 0 && (wait == 0 || w < wait) {
					wait = w
				}
				if want <= 0 {
					continue
				}
				ds, err := tr.claim(ctx, want, now)
				if err != nil {
					storeErr = err
					e.log.Warn("claim deliveries", "target", tr.cfg.Name, "error", err)
					continue
				}
				at := e.opts.Now().UTC()
				for i := range ds {
					tr.start(&ds[i], at)
				}
				claimed += len(ds)
			}
		}
		res.Claimed += claimed
		if claimed > 0 {
			continue // more may be due
		}
		if e.inFlight() == 0 {
			if !open {
				break
			}
			// Nothing claimable now and nothing of ours in flight: done,
			// unless something becomes due before the window ends.
			soon, err := e.dueBy(ctx, end)
			if err != nil {
				storeErr = err
			} else if soon == 0 {
				break
			}
		}
		sleep := e.opts.PollInterval
		if wait > 0 && wait < sleep {
			sleep = wait
		}
		t := time.NewTimer(sleep)
		cases[timerCase].Chan = reflect.ValueOf(t.C)
		reflect.Select(cases)
		t.Stop()
	}
	// The window ended or ctx did: wait for the attempts in flight (ctx
	// cancels them, each gives its delivery back uncounted).
	e.attempts.Wait()
	if err := e.leftOver(context.WithoutCancel(ctx), e.opts.Now().UTC(), end, res); err != nil {
		return res, err
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if res.Due > 0 && storeErr != nil {
		return res, fmt.Errorf("drain: %w", storeErr)
	}
	return res, nil
}

// inFlight counts this engine's claimed deliveries not yet recorded.
func (e *Engine) inFlight() int {
	n := 0
	for _, tr := range e.cur().targets {
		n += len(tr.slots)
	}
	return n
}

// dueBy counts the deliveries of the configured targets that are due at
// or before at.
func (e *Engine) dueBy(ctx context.Context, at time.Time) (int, error) {
	stats, err := e.store.DeliveryStats(ctx, &at)
	if err != nil {
		return 0, fmt.Errorf("delivery stats: %w", err)
	}
	n := 0
	for _, s := range stats {
		if e.cur().targets[s.Target] != nil {
			n += s.Due
		}
	}
	return n, nil
}

// leftOver fills res with what the configured targets still hold at now;
// scheduled deliveries due before end count as due (the window closed on
// them).
func (e *Engine) leftOver(ctx context.Context, now, end time.Time, res *DrainResult) error {
	at := now
	if end.After(at) {
		at = end
	}
	stats, err := e.store.DeliveryStats(ctx, &at)
	if err != nil {
		return fmt.Errorf("delivery stats: %w", err)
	}
	for _, s := range stats {
		if e.cur().targets[s.Target] == nil {
			continue
		}
		res.Due += s.Due
		res.Later += s.Scheduled
		res.Waiting += s.Waiting
		res.Running += s.Running
		res.Dead += s.Dead
	}
	return nil
}

// Await waits until message id is terminal (or ctx ends) and returns its
// merged answer: every forward step's status, answer and attempts. It is
// woken by this engine's completions and re-reads the store every
// WaitPoll in case another process delivers. ctx ending returns the
// answer as it stands, with ctx's error.
func (e *Engine) Await(ctx context.Context, id string) (*MessageAnswer, error) {
	poll := time.NewTicker(e.opts.WaitPoll)
	defer poll.Stop()
	w, changed := e.subscribe(id)
	defer e.unsubscribe(id)
	for {
		md, err := e.store.MessageGet(context.WithoutCancel(ctx), id)
		if err != nil {
			return nil, fmt.Errorf("read message: %w", err)
		}
		ans := mergedAnswer(md)
		if md.Message.Status.Terminal() {
			return ans, nil
		}
		select {
		case <-changed:
			changed, _ = e.next(w)
		case <-poll.C:
		case <-ctx.Done():
			return ans, ctx.Err()
		}
	}
}

// MessageAnswerOf builds a stored message's merged answer, as Await does.
func MessageAnswerOf(md *record.MessageDetail) *MessageAnswer { return mergedAnswer(md) }

// mergedAnswer is a message's answer with every forward step.
func mergedAnswer(md *record.MessageDetail) *MessageAnswer {
	body := &MessageAnswer{ID: md.Message.ID, Status: md.Message.Status, Steps: map[string]StepAnswer{}}
	for _, d := range md.Deliveries {
		if _, isComp := record.Compensates(d.Step); isComp {
			continue
		}
		var took time.Duration
		for _, a := range md.Attempts[d.ID] {
			took += a.Duration
		}
		body.Steps[d.Step] = stepAnswer(d, took)
	}
	return body
}
