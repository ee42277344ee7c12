package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tandem-run/tandem/internal/store"
)

// op is one write waiting for the writer: a function to run inside the
// batch transaction, and the caller's answer.
type op struct {
	ctx  context.Context
	fn   func(*wtx) error
	err  error
	done chan struct{}
	// due is, for an insert, how many deliveries it makes due at once;
	// for a delivery op (claim, complete, postpone), 1: the share rule
	// of the writer weighs inserts against delivery work with it.
	due    int
	insert bool // a message insert (the ingest queue)
}

func newOp(ctx context.Context, fn func(*wtx) error) *op {
	return &op{ctx: ctx, fn: fn, done: make(chan struct{})}
}

// writer owns the one write connection. Its loop takes every op that is
// waiting (up to maxBatch), runs them in one transaction with a savepoint
// each, commits once, and only then answers the callers.
//
// Ops come in two queues. queue carries delivery work (claims, completes,
// postpones, replays, purges) and is served first; ingest carries message
// inserts. While deliveries flow (delivery ops in this batch, or in the
// recent ones: finishAvg), the inserts taken with a batch may make at
// most as many deliveries due as the batch's delivery ops finish (or the
// recent average, if higher), plus ingestFloor: ingest cannot starve
// delivery, so under a load the machine can carry the backlog stays flat,
// and accepts slow down (their callers wait in the queue) instead of the
// backlog growing without bound. With no delivery work for a while (idle
// targets, an open breaker, a dead target) inserts fill the batch:
// accepting never depends on delivering.
type writer struct {
	conn     *sql.Conn
	queue    chan *op // delivery work
	ingest   chan *op // message inserts
	maxBatch int
	onBatch  func(int)
	tx       *wtx
	// finishAvg is a moving average of the delivery ops per batch (each
	// batch weighs a quarter): the rate deliveries finish at, which the
	// share rule holds inserts to even in a batch that happens to hold no
	// delivery op.
	finishAvg float64
}

// ingestFloor is how many deliveries a batch's inserts may make due beyond
// those its delivery ops finish: room for a new burst to start while work
// is in flight, and the most the backlog can grow per batch while
// deliveries flow.
const ingestFloor = 4

// wtx is what an op sees: the write connection's prepared statements,
// inside the open batch transaction.
type wtx struct {
	conn    *sql.Conn
	st      statements
	inserts [maxInsertRows + 1]*sql.Stmt // by row count, prepared on first use
	// ctx for statements: never the caller's, since cancelling a statement
	// interrupts the connection and with it the whole shared transaction.
	ctx context.Context
}

func newWriter(ctx context.Context, db *sql.DB, maxBatch int, onBatch func(int)) (*writer, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite writer: %w", err)
	}
	w := &writer{conn: conn, queue: make(chan *op, 4*maxBatch), ingest: make(chan *op, 4*maxBatch), maxBatch: maxBatch, onBatch: onBatch}
	w.tx = &wtx{conn: conn, ctx: context.Background()}
	if err := w.tx.st.prepare(ctx, conn); err != nil {
		w.tx.st.close()
		conn.Close()
		return nil, fmt.Errorf("sqlite writer: %w", err)
	}
	return w, nil
}

// close releases the statements and the connection; the loop has ended.
func (w *writer) close() error {
	w.tx.st.close()
	for _, st := range w.tx.inserts {
		if st != nil {
			st.Close()
		}
	}
	return w.conn.Close()
}

// loop runs until both queues are closed and drained.
func (w *writer) loop() {
	batch := make([]*op, 0, w.maxBatch)
	queue, ingest := w.queue, w.ingest
	var held *op // an insert the share rule left for the next batch
	for queue != nil || ingest != nil || held != nil {
		batch = batch[:0]
		if held != nil {
			batch = append(batch, held)
			held = nil
		} else {
			select {
			case o, ok := <-queue:
				if !ok {
					queue = nil
					continue
				}
				batch = append(batch, o)
			case o, ok := <-ingest:
				if !ok {
					ingest = nil
					continue
				}
				batch = append(batch, o)
			}
		}
		// Delivery work first, all that waits.
	work:
		for queue != nil && len(batch) < w.maxBatch {
			select {
			case o, ok := <-queue:
				if !ok {
					queue = nil
					break work
				}
				batch = append(batch, o)
			default:
				break work
			}
		}
		// Then inserts, within the share delivery work leaves them.
		finishes, due := 0, 0
		for _, o := range batch {
			if o.isInsert() {
				due += o.due
			} else {
				finishes += o.due
			}
		}
		flowing := finishes > 0 || w.finishAvg >= 0.5
		share := max(float64(finishes), w.finishAvg) + ingestFloor
	inserts:
		for ingest != nil && len(batch) < w.maxBatch {
			select {
			case o, ok := <-ingest:
				if !ok {
					ingest = nil
					break inserts
				}
				if flowing && float64(due+o.due) > share {
					held = o
					break inserts
				}
				due += o.due
				batch = append(batch, o)
			default:
				break inserts
			}
		}
		w.finishAvg = 0.75*w.finishAvg + 0.25*float64(finishes)
		w.run(batch)
		clear(batch)
	}
}

// isInsert tells a message insert from delivery work.
func (o *op) isInsert() bool { return o.insert }

// run executes one batch and answers its ops.
//
// The batch runs first without savepoints: every op checks before it
// writes and reports a failed check as a clean error (see clean), so a
// failing op usually leaves nothing to undo. Only when an op fails after it
// wrote (a constraint, an I/O error) is the batch rolled back and run again
// with a savepoint around each op, which costs a page copy per touched page.
func (w *writer) run(batch []*op) {
	t := w.tx
	err := w.exec(t.st.begin)
	if err == nil {
		err = w.apply(batch, false)
	}
	if errors.Is(err, errDirty) {
		_, _ = t.conn.ExecContext(t.ctx, "ROLLBACK")
		for _, o := range batch {
			o.err = nil
		}
		err = w.exec(t.st.begin)
		if err == nil {
			err = w.apply(batch, true)
		}
	}
	if err == nil {
		// The one fsync of the batch: no caller hears "done" before it.
		err = w.exec(t.st.commit)
	}
	if err != nil {
		// A failed batch: nothing of it is durable, so every op fails,
		// including those that had succeeded inside it.
		_, _ = t.conn.ExecContext(t.ctx, "ROLLBACK")
		err = fmt.Errorf("commit: %w: %w", store.ErrUnavailable, err)
		for _, o := range batch {
			if o.err == nil {
				o.err = err
			}
		}
	}
	if w.onBatch != nil {
		w.onBatch(len(batch))
	}
	for _, o := range batch {
		close(o.done)
	}
}

// errDirty: an op failed after writing, and there was no savepoint to undo
// it; the batch must run again with savepoints.
var errDirty = errors.New("op failed after writing")

// cleanError marks an op's error as raised before it wrote anything.
type cleanError struct{ err error }

func (e cleanError) Error() string { return e.err.Error() }
func (e cleanError) Unwrap() error { return e.err }

// clean marks err as raised before the op wrote anything, so the batch can
// go on without undoing it.
func clean(err error) error { return cleanError{err} }

// apply runs each op of the batch; with safe, each under its own savepoint,
// so even an op that fails halfway leaves no trace. An error from apply is
// one that breaks the transaction itself, or errDirty.
func (w *writer) apply(batch []*op, safe bool) error {
	t := w.tx
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.err = err // the caller has gone: do not write for it
			continue
		}
		if safe {
			if err := w.exec(t.st.savepoint); err != nil {
				return err
			}
		}
		err := o.fn(t)
		if err != nil {
			if ce, ok := err.(cleanError); ok {
				err = ce.err
			} else if !safe {
				return errDirty
			}
			o.err = unavailable(err)
			if safe {
				if rerr := w.exec(t.st.rollbackTo); rerr != nil {
					return errors.Join(err, rerr)
				}
			}
		}
		if safe {
			if err := w.exec(t.st.release); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *writer) exec(st *sql.Stmt) error {
	_, err := st.ExecContext(w.tx.ctx)
	return err
}
