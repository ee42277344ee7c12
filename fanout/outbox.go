package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tandem-run/tandem/internal/engine"
	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
	"github.com/tandem-run/tandem/internal/store/sqlite"
)

// Outbox is a durable outbox on an embedded SQLite file: Send commits a
// message and its deliveries to the file (fsync) and returns; the
// Outbox's workers, in the same process, deliver them with the plan's
// retries, breaker and rate limit, the waits kept in the file. When the
// program dies, what Send committed is delivered after it opens the same
// file again; an attempt that was in flight is sent again after its
// lease (the target's Timeout plus LeaseMargin), with the same
// Idempotency-Key, so a target that drops duplicates sees each step once.
// One process at a time may open a file. Safe for concurrent use.
type Outbox struct {
	eng *engine.Engine
	st  store.Store
}

// OutboxOptions configure OpenOutbox.
type OutboxOptions struct {
	// Path is the SQLite file ("outbox.db", or a "file:" DSN). Required.
	Path string
	// Config holds the targets and plans. Required.
	Config Config
	// PollInterval is the longest an idle worker waits before it looks
	// for due deliveries (retries) again; new messages wake it at once.
	// Default 250ms.
	PollInterval time.Duration
	// UnsafeAsyncCommit lets Path's DSN weaken durability (a synchronous
	// pragma of its own): Send may then return before the message is on
	// disk. Default false: such a DSN is refused.
	UnsafeAsyncCommit bool
}

// Open opens (or creates) the outbox file at path for cfg's plans and
// starts its workers.
func Open(path string, cfg Config) (*Outbox, error) {
	return OpenOutbox(context.Background(), OutboxOptions{Path: path, Config: cfg})
}

// OpenOutbox is Open with every option.
func OpenOutbox(ctx context.Context, opts OutboxOptions) (*Outbox, error) {
	if opts.Path == "" {
		return nil, errors.New("fanout: outbox path is required")
	}
	ec, err := opts.Config.build(true)
	if err != nil {
		return nil, err
	}
	logger := opts.Config.Logger
	if logger == nil {
		logger = slog.Default()
	}
	st, err := sqlite.Open(ctx, sqlite.Config{DSN: opts.Path, Logger: logger, UnsafeAsyncCommit: opts.UnsafeAsyncCommit})
	if err != nil {
		return nil, fmt.Errorf("fanout: open outbox %s: %w", opts.Path, err)
	}
	eng, err := newEngine(ec, st, logger, opts.PollInterval)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	if err := eng.Start(ctx); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("fanout: %w", err)
	}
	return &Outbox{eng: eng, st: st}, nil
}

// Send commits one message for the named plan and returns its id once the
// commit is durable; delivery goes on in the background. With
// req.IdempotencyKey set, a repeat returns the first message's id and
// commits nothing. Errors: ErrUnknownPlan, ErrClosed,
// ErrIdempotencyConflict, a bad req.JSON, and a store that cannot commit.
func (o *Outbox) Send(ctx context.Context, plan string, req Request) (string, error) {
	in, err := req.inbound()
	if err != nil {
		return "", err
	}
	ans, err := o.eng.Ingest(ctx, plan, in)
	if err != nil {
		return "", publicError(err, plan)
	}
	return ans.Body.ID, nil
}

// Wait waits until message id is done (every step finished for good) and
// returns its merged result. When ctx ends first it returns the result so
// far with ctx's error; the message goes on.
func (o *Outbox) Wait(ctx context.Context, id string) (*Result, error) {
	ans, err := o.eng.Await(ctx, id)
	if ans == nil {
		return nil, o.notFound(err, id)
	}
	return resultOf(ans, false), err
}

// Result returns message id's result as it stands now.
func (o *Outbox) Result(ctx context.Context, id string) (*Result, error) {
	md, err := o.st.MessageGet(ctx, id)
	if err != nil {
		return nil, o.notFound(err, id)
	}
	return resultOf(engine.MessageAnswerOf(md), false), nil
}

// Replay sends the dead steps of message id back to work with a fresh
// retry budget (their skipped dependants wait for them again) and returns
// how many it replayed. A saga's forward steps are not replayed once its
// compensation has begun. ErrNotFound if there is no such message.
func (o *Outbox) Replay(ctx context.Context, id string) (int, error) {
	md, err := o.st.MessageGet(ctx, id)
	if err != nil {
		return 0, o.notFound(err, id)
	}
	var ids []string
	for _, d := range md.Deliveries {
		if d.Status == record.DeliveryDead {
			ids = append(ids, d.ID)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	res, err := o.eng.Replay(ctx, &store.DeliveryReplayParams{IDs: ids})
	if err != nil {
		return 0, fmt.Errorf("fanout: %w", err)
	}
	return len(res.Replayed), nil
}

func (o *Outbox) notFound(err error, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return fmt.Errorf("fanout: %w", err)
}

// Close stops taking messages, lets the attempts in flight finish until
// ctx ends (then cancels them; they are sent again after a restart), and
// closes the file. What is not delivered yet stays in the file for the
// next Open.
func (o *Outbox) Close(ctx context.Context) error {
	err := o.eng.Shutdown(ctx)
	if cerr := o.st.Close(); err == nil {
		err = cerr
	}
	return err
}
