package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandem-run/tandem/internal/record"
	"github.com/tandem-run/tandem/internal/store"
)

// completeOp is one DeliveryComplete call waiting in a group commit.
type completeOp struct {
	p   store.DeliveryCompleteParams
	now time.Time

	res  *store.DeliveryCompleteResult
	err  error
	done chan struct{}
}

func (op *completeOp) finish(res *store.DeliveryCompleteResult, err error) {
	op.res, op.err = res, err
	close(op.done)
}

// DeliveryComplete records an attempt and the delivery's new status, then
// resolves its message's waiting deliveries and derives the message status,
// all in one transaction shared with the other calls in flight. See
// store.Store.DeliveryComplete.
func (s *Store) DeliveryComplete(ctx context.Context, p *store.DeliveryCompleteParams) (*store.DeliveryCompleteResult, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	op, err := newCompleteOp(p)
	if err != nil {
		return nil, err
	}
	if err := s.completes.call(ctx, op, op.done); err != nil {
		return nil, fmt.Errorf("complete delivery %s: %w", p.DeliveryID, err)
	}
	return op.res, op.err
}

// newCompleteOp checks p and prepares its values, in the caller's
// goroutine.
func newCompleteOp(p *store.DeliveryCompleteParams) (*completeOp, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	op := &completeOp{p: *p, now: micro(store.NowOr(p.Now)), done: make(chan struct{})}
	op.p.LastError = clean(p.LastError)
	op.p.Attempt.Error = clean(p.Attempt.Error)
	op.p.Attempt.StartedAt = micro(p.Attempt.StartedAt)
	if op.p.Attempt.StartedAt.IsZero() {
		op.p.Attempt.StartedAt = op.now
	}
	op.p.NextAttemptAt = micro(p.NextAttemptAt)
	if p.Status == record.DeliveryScheduled && op.p.NextAttemptAt.IsZero() {
		op.p.NextAttemptAt = op.now
	}
	if _, err := encodeHeaders(p.ResponseHeaders); err != nil {
		return nil, fmt.Errorf("complete delivery %s: response headers: %w", p.DeliveryID, err)
	}
	return op, nil
}

// runCompletes is one group commit of DeliveryComplete calls.
func (s *Store) runCompletes(ctx context.Context, ops []*completeOp) {
	// One call per delivery in a batch; a repeat waits for the next one.
	seen := make(map[string]bool, len(ops))
	var now, later []*completeOp
	for _, op := range ops {
		if seen[op.p.DeliveryID] {
			later = append(later, op)
			continue
		}
		seen[op.p.DeliveryID] = true
		now = append(now, op)
	}
	var err error
	for try := 0; ; try++ {
		err = s.completeBatch(ctx, now)
		if err == nil || !retryable(err) || try == 3 {
			break
		}
	}
	switch {
	case err == nil:
	case unavailable(err) || len(now) == 1:
		for _, op := range now {
			op.finish(nil, wrap("complete delivery "+op.p.DeliveryID, err))
		}
	default:
		for _, op := range now {
			s.runCompletes(ctx, []*completeOp{op})
		}
	}
	if len(later) > 0 {
		s.runCompletes(ctx, later)
	}
}

// completeBatch runs ops in one transaction of two round trips: (BEGIN,
// lock the messages, read and lock their deliveries), then the write core
// decides each op, then (write, COMMIT). It answers the ops only after the
// COMMIT; on error it answers none.
func (s *Store) completeBatch(ctx context.Context, ops []*completeOp) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed && !conn.Conn().IsClosed() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = conn.Exec(rctx, "ROLLBACK")
			cancel()
		}
		conn.Release()
	}()

	ids := make([]string, len(ops))
	now := ops[0].now
	for i, op := range ops {
		ids[i] = op.p.DeliveryID
		if op.now.After(now) {
			now = op.now
		}
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	queueFamilies(b, ids)
	br := conn.SendBatch(ctx, b)
	var fs []*record.Family
	if _, err = br.Exec(); err == nil {
		fs, err = readFamilies(br, now)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}

	// The write core decides each op against its message, in op order.
	errs := make([]error, len(ops))
	touched := map[*record.Family]bool{}
	var order []*record.Family
	for i, op := range ops {
		f := familyOf(fs, op.p.DeliveryID)
		if f == nil {
			errs[i] = fmt.Errorf("complete delivery %s: %w", op.p.DeliveryID, store.ErrNotFound)
			continue
		}
		if errs[i] = f.Complete(op.p.Completion()); errs[i] != nil {
			continue
		}
		if !touched[f] {
			touched[f] = true
			order = append(order, f)
		}
	}
	ws := make([]*record.Writes, len(order))
	byMessage := map[string]*record.Writes{}
	for i, f := range order {
		ws[i] = f.Writes()
		byMessage[ws[i].MessageID] = ws[i]
	}

	b = &pgx.Batch{}
	targets, err := queueWrites(b, ws, fs, now)
	if err != nil {
		return err
	}
	n := b.Len()
	claims := queueClaims(b, ops, errs, now)
	b.Queue("COMMIT")
	br = conn.SendBatch(ctx, b)
	err = execAll(br, n)
	for i := range claims {
		if err != nil {
			break
		}
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			claims[i].got, err = scanClaimed(rows)
		}
	}
	if err == nil {
		var tag pgconn.CommandTag
		tag, err = br.Exec()
		if err == nil && tag.String() != "COMMIT" {
			err = errors.New("transaction rolled back")
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	committed = true
	s.notes.add(targets)
	s.attachClaimed(ctx, claims)
	claimed := dealClaims(claims, len(ops))

	readyDone := map[string]bool{}
	for i, op := range ops {
		if errs[i] != nil {
			op.finish(nil, errs[i])
			continue
		}
		f := familyOf(fs, op.p.DeliveryID)
		w := byMessage[f.MessageID()]
		r := &store.DeliveryCompleteResult{MessageID: w.MessageID, MessageStatus: w.Status}
		// Several calls of one message in a batch: the first gets the
		// ready deliveries, so each is woken once.
		if !readyDone[w.MessageID] {
			readyDone[w.MessageID] = true
			r.Ready = readyOf(f, w)
		}
		r.Claimed = claimed[i]
		op.finish(r, nil)
	}
	return nil
}

// claimGroup is one claim queued with a batch of completes: the ops that
// asked ClaimNext of one target, owner and lease share it.
type claimGroup struct {
	p    store.DeliveryClaimParams
	want []int // op indexes, in op order, one entry per delivery asked
	got  []record.Delivery
}

// queueClaims queues, in the completes' transaction, the claims their
// ClaimNext asked for (one statement per target, owner and lease, for the
// sum of their limits), so a worker's next lease commits with its last
// result instead of costing a commit of its own. An op that failed asks
// nothing.
func queueClaims(b *pgx.Batch, ops []*completeOp, errs []error, now time.Time) []*claimGroup {
	type key struct {
		target, owner string
		lease         time.Duration
	}
	var groups []*claimGroup
	by := map[key]*claimGroup{}
	for i, op := range ops {
		c := op.p.ClaimNext
		if errs[i] != nil || c == nil || c.Limit <= 0 || c.Owner == "" {
			continue
		}
		k := key{c.Target, c.Owner, c.LeaseFor}
		g := by[k]
		if g == nil {
			g = &claimGroup{p: *c}
			by[k] = g
			groups = append(groups, g)
		}
		for range c.Limit {
			g.want = append(g.want, i)
		}
	}
	for _, g := range groups {
		b.Queue(claimQuery, g.p.Target, now, len(g.want), g.p.Owner, now.Add(g.p.LeaseFor))
	}
	return groups
}

// attachClaimed attaches the messages of every group's claims, with one
// query.
func (s *Store) attachClaimed(ctx context.Context, groups []*claimGroup) {
	var all []record.Delivery
	for _, g := range groups {
		all = append(all, g.got...)
	}
	if len(all) == 0 {
		return
	}
	if err := s.attachMessages(ctx, all); err != nil {
		// The claims stand; each worker reads its message itself.
		s.log.Warn("claim deliveries: read their messages", "error", err)
		return
	}
	for _, g := range groups {
		g.got, all = all[:len(g.got)], all[len(g.got):]
	}
}

// dealClaims hands each group's claimed deliveries to the ops that asked,
// oldest due to the first op; claimed[i] is op i's.
func dealClaims(groups []*claimGroup, n int) [][]record.Delivery {
	claimed := make([][]record.Delivery, n)
	for _, g := range groups {
		for j, d := range g.got {
			i := g.want[j]
			claimed[i] = append(claimed[i], d)
		}
	}
	return claimed
}

// readyOf returns the whole rows of the deliveries w made ready, as they
// are now stored.
func readyOf(f *record.Family, w *record.Writes) []record.Delivery {
	var out []record.Delivery
	for _, r := range w.Ready {
		for _, d := range f.Deliveries() {
			if d.ID == r.ID {
				d.UpdatedAt = f.Now()
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, func(a, b record.Delivery) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.Step, b.Step))
	})
	return out
}
