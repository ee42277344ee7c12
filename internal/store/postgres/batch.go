package postgres

import (
	"context"
	"sync"
)

// batcher gathers concurrent calls into group commits: each writer
// goroutine takes one op, then every op already queued (up to max), and
// runs them together in one transaction. A caller is answered only after
// its batch committed (or failed).
type batcher[T any] struct {
	ch     chan *T
	closed <-chan struct{}
	max    int
	run    func(ctx context.Context, ops []*T)
	wg     sync.WaitGroup
	// ctx outlives the callers: a batch that started commits even if the
	// caller that triggered it gave up, so the other callers in it still
	// get their answer.
	ctx     context.Context
	cancel  context.CancelFunc
	stopped chan struct{} // closed once every writer has returned
}

func newBatcher[T any](writers, max int, closed <-chan struct{}, run func(context.Context, []*T)) *batcher[T] {
	ctx, cancel := context.WithCancel(context.Background())
	b := &batcher[T]{ch: make(chan *T, max*writers), closed: closed, max: max, run: run, ctx: ctx, cancel: cancel, stopped: make(chan struct{})}
	for range writers {
		b.wg.Add(1)
		go b.loop()
	}
	return b
}

// call queues op and waits until done is closed (the op ran), ctx ends, or
// the store closed without running it.
func (b *batcher[T]) call(ctx context.Context, op *T, done <-chan struct{}) error {
	select {
	case <-b.closed:
		return errClosed
	default:
	}
	select {
	case b.ch <- op:
	case <-b.closed:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// The op may still commit; the caller only stops waiting.
		return ctx.Err()
	case <-b.stopped:
		// Queued just as the store closed: the writers may have left
		// without it.
		select {
		case <-done:
			return nil
		default:
			return errClosed
		}
	}
}

func (b *batcher[T]) loop() {
	defer b.wg.Done()
	ops := make([]*T, 0, b.max)
	for {
		var first *T
		select {
		case first = <-b.ch:
		case <-b.closed:
			// Drain what was queued before Close so no caller waits forever.
			for {
				select {
				case op := <-b.ch:
					b.runOne([]*T{op})
				default:
					return
				}
			}
		}
		ops = append(ops[:0], first)
	gather:
		for len(ops) < b.max {
			select {
			case op := <-b.ch:
				ops = append(ops, op)
			default:
				break gather
			}
		}
		b.runOne(ops)
		clear(ops)
	}
}

// runOne runs one batch under batchTimeout, so a database that stopped
// answering (no reset, no refusal) still gets every caller an answer.
func (b *batcher[T]) runOne(ops []*T) {
	ctx, cancel := context.WithTimeout(b.ctx, batchTimeout)
	defer cancel()
	b.run(ctx, ops)
}

// wait returns once every writer has finished; call after closed is closed.
func (b *batcher[T]) wait() {
	b.wg.Wait()
	b.cancel()
	close(b.stopped)
}
