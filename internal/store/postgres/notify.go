package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// notifier sends the NOTIFY wake-ups after the data commits, from its own
// small transactions, instead of inside them: PostgreSQL serialises the
// commits of every transaction that has notified (a database-wide lock held
// through the WAL flush), which would undo group commit across writers and
// replicas. Its transactions commit with synchronous_commit off, since a
// lost wake-up only means a worker finds the work at its next poll. Targets
// queued while one is being sent go out together in the next.
type notifier struct {
	s       *Store
	mu      sync.Mutex
	pending map[string]bool
	// changes are the message ids queued by ChangeNotify, by origin
	// (changes.go); they go out in the same small transaction.
	changes map[string]map[string]bool
	kick    chan struct{}
	quit    chan struct{} // closed by stop
	done    chan struct{} // closed when loop has returned
}

func newNotifier(s *Store) *notifier {
	n := &notifier{s: s, pending: map[string]bool{}, changes: map[string]map[string]bool{}, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go n.loop()
	return n
}

// add queues targets for the next wake-up.
func (n *notifier) add(targets []string) {
	if len(targets) == 0 {
		return
	}
	n.mu.Lock()
	for _, t := range targets {
		n.pending[t] = true
	}
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *notifier) loop() {
	defer close(n.done)
	for {
		select {
		case <-n.kick:
			n.flush()
		case <-n.quit:
			// Close stops the writers first: send what they left.
			n.flush()
			return
		}
	}
}

// stop sends the last wake-ups and ends the loop.
func (n *notifier) stop() {
	close(n.quit)
	<-n.done
}

func (n *notifier) flush() {
	n.mu.Lock()
	if len(n.pending) == 0 && len(n.changes) == 0 {
		n.mu.Unlock()
		return
	}
	targets := make([]string, 0, len(n.pending))
	for t := range n.pending {
		targets = append(targets, t)
	}
	clear(n.pending)
	changes := changePayloads(n.changes)
	clear(n.changes)
	n.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit TO OFF")
	if len(targets) > 0 {
		b.Queue(notifySQL, n.s.channel, targets)
	}
	if len(changes) > 0 {
		b.Queue(notifySQL, n.s.changesChannel(), changes)
	}
	b.Queue("COMMIT")
	if err := n.s.pool.SendBatch(ctx, b).Close(); err != nil {
		n.s.log.Debug("postgres notify", "targets", targets, "error", err)
	}
}
