package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/tandem-run/tandem/internal/store"
)

// Config configures a Store.
type Config struct {
	// DSN locates the database: "file:tandem.db" or a plain path. Query
	// parameters of the modernc.org/sqlite driver may be added; the store
	// sets WAL, synchronous=FULL, busy_timeout and foreign_keys itself.
	// Required.
	DSN string
	// ReadConns is the size of the read pool. Default 4.
	ReadConns int
	// MaxBatch is the most writes one transaction commits together.
	// Default 512.
	MaxBatch int
	// OnBatch, when set, is called by the writer after each commit with the
	// number of operations it held (for a batch-size histogram). It must
	// not block.
	OnBatch func(ops int)
	// Logger receives migration notices. Default slog.Default().
	Logger *slog.Logger
	// UnsafeAsyncCommit lets the DSN weaken durability (a synchronous or
	// journal_mode pragma of its own): store.unsafe_async_commit. Without
	// it such a DSN is refused, and Open checks that the write connection
	// runs synchronous=FULL. Default false.
	UnsafeAsyncCommit bool
}

func (c *Config) setDefaults() error {
	if c.DSN == "" {
		return errors.New("sqlite: no dsn")
	}
	if c.ReadConns <= 0 {
		c.ReadConns = 4
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Store is the SQLite store.Store: one writer connection fed by a
// group-commit queue, and a pool of read connections on the same file.
type Store struct {
	cfg Config
	log *slog.Logger
	wdb *sql.DB // one connection: every write goes through it
	rdb *sql.DB // read pool, query_only
	// Hot reads, prepared once on the read pool (database/sql re-prepares
	// them per connection as needed) instead of parsed on every call.
	dueCheck, claimedMessages *sql.Stmt
	// MessageGet's three reads (a respond: all answer reads its message
	// once per request: parsing them each time was 10% of its CPU).
	getMessage, getDeliveries, getAttempts *sql.Stmt
	w                                      *writer
	recent                                 *recent      // the latest inserted messages, for claims
	mu                                     sync.RWMutex // held shared while an op is queued; Close takes it to stop new ops
	closed                                 bool
	done                                   chan struct{} // closed when the writer goroutine has ended
	lock                                   *os.File      // flock on the database file; nil for memory databases
	synchronous                            int           // the write connection's PRAGMA synchronous at Open
}

var _ store.Store = (*Store)(nil)

// errClosed is returned by every call after Close.
var errClosed = fmt.Errorf("sqlite: closed: %w", store.ErrUnavailable)

// Open opens (creating if needed) the database, applies pending migrations
// and starts the writer.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	path, weak, sets, err := parseDSN(cfg.DSN)
	if err != nil {
		return nil, err
	}
	if weak != "" && !cfg.UnsafeAsyncCommit {
		return nil, fmt.Errorf("the sqlite dsn sets %s: tandem runs WAL with synchronous=FULL so that an acknowledged message is on disk; remove it, or set store.unsafe_async_commit: true", weak)
	}
	var lock *os.File
	if path != "" {
		if lock, err = lockFile(path); err != nil {
			return nil, err
		}
		if err := privateFiles(path); err != nil {
			closeLock(lock)
			return nil, err
		}
	}
	// synchronous=FULL: a commit returns only after the WAL is fsynced,
	// which is what lets an answer to the caller mean "durable".
	params := []string{"_pragma=busy_timeout(10000)", "_pragma=foreign_keys(1)",
		// Savepoints copy each page they touch to a sub-journal; in memory,
		// not in a temporary file, or every op pays for write syscalls.
		"_pragma=temp_store(MEMORY)",
		// 8 MiB of page cache for the writer: the pages it touches are the
		// tails of the tables and the due index, a few MiB even with a
		// backlog of 100k deliveries; more is resident memory (RSS) that
		// buys nothing (bench P5: 161 MiB at 16 MiB, 144 at 8, P3 the same).
		"_pragma=cache_size(-8192)"}
	if !sets["journal_mode"] {
		params = append(params, "_pragma=journal_mode(WAL)")
	}
	if !sets["synchronous"] {
		params = append(params, "_pragma=synchronous(FULL)")
	}
	wdb, err := sql.Open("sqlite", withParams(cfg.DSN, params...))
	if err != nil {
		closeLock(lock)
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	var sync int
	if err := wdb.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
		wdb.Close()
		closeLock(lock)
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	if !cfg.UnsafeAsyncCommit {
		if sync < 2 { // 2 is FULL, 3 EXTRA
			wdb.Close()
			closeLock(lock)
			return nil, fmt.Errorf("open sqlite: synchronous is %d, not FULL (2): an acknowledged message would not be on disk", sync)
		}
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	s := &Store{cfg: cfg, log: cfg.Logger, wdb: wdb, done: make(chan struct{}), lock: lock, synchronous: sync, recent: newRecent(recentSize)}
	if err := s.migrate(ctx); err != nil {
		wdb.Close()
		closeLock(lock)
		return nil, err
	}
	rdb, err := sql.Open("sqlite", withParams(cfg.DSN,
		"_pragma=busy_timeout(10000)", "_pragma=query_only(1)"))
	if err != nil {
		wdb.Close()
		closeLock(lock)
		return nil, fmt.Errorf("open sqlite reader: %w", err)
	}
	rdb.SetMaxOpenConns(cfg.ReadConns)
	rdb.SetMaxIdleConns(cfg.ReadConns)
	s.rdb = rdb
	if s.dueCheck, err = rdb.PrepareContext(ctx, `SELECT 1 FROM deliveries
		WHERE target = ? AND status IN ('scheduled', 'running') AND next_attempt_at <= ? LIMIT 1`); err == nil {
		s.claimedMessages, err = rdb.PrepareContext(ctx, `SELECT `+messageCols+` FROM messages
			WHERE id IN (SELECT value FROM json_each(?))`)
	}
	if err == nil {
		s.getMessage, err = rdb.PrepareContext(ctx, getMessageSQL)
	}
	if err == nil {
		s.getDeliveries, err = rdb.PrepareContext(ctx, getDeliveriesSQL)
	}
	if err == nil {
		s.getAttempts, err = rdb.PrepareContext(ctx, getAttemptsSQL)
	}
	if err != nil {
		wdb.Close()
		rdb.Close()
		closeLock(lock)
		return nil, fmt.Errorf("prepare sqlite reads: %w", err)
	}
	w, err := newWriter(ctx, wdb, cfg.MaxBatch, cfg.OnBatch)
	if err != nil {
		wdb.Close()
		rdb.Close()
		closeLock(lock)
		return nil, err
	}
	s.w = w
	go func() {
		defer close(s.done)
		w.loop()
	}()
	return s, nil
}

// parseDSN returns the file a DSN names ("" for a memory database), the
// first pragma in it that can weaken durability (synchronous or
// journal_mode), if any, and which of the two it sets.
func parseDSN(dsn string) (path, weak string, sets map[string]bool, err error) {
	rest, query, _ := strings.Cut(dsn, "?")
	rest = strings.TrimPrefix(rest, "file:")
	vals, err := url.ParseQuery(query)
	if err != nil {
		return "", "", nil, fmt.Errorf("the sqlite dsn's parameters cannot be parsed: %w", err)
	}
	sets = map[string]bool{}
	for _, p := range vals["_pragma"] {
		name, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(p)), "(")
		name, _, _ = strings.Cut(name, "=")
		if name == "synchronous" || name == "journal_mode" {
			if weak == "" {
				weak = "_pragma=" + p
			}
			sets[name] = true
		}
	}
	if rest == "" || strings.HasPrefix(rest, ":memory:") || vals.Get("mode") == "memory" {
		return "", weak, sets, nil
	}
	return rest, weak, sets, nil
}

func closeLock(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// withParams appends driver query parameters to a DSN.
func withParams(dsn string, params ...string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + strings.Join(params, "&")
}

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	if s.isClosed() {
		return errClosed
	}
	var one int
	if err := s.rdb.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping: %w: %w", store.ErrUnavailable, err)
	}
	return nil
}

// Close stops taking writes, commits those already queued, and closes the
// database. Calls after Close return an error.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	// No op is being queued now (they hold mu shared while they send), and
	// none will be: the writer drains what is queued and ends.
	close(s.w.queue)
	close(s.w.ingest)
	s.mu.Unlock()
	<-s.done
	err := errors.Join(s.w.close(), s.dueCheck.Close(), s.claimedMessages.Close(),
		s.getMessage.Close(), s.getDeliveries.Close(), s.getAttempts.Close(), s.rdb.Close(), s.wdb.Close())
	// Only now that SQLite has closed the file (see lockFile).
	closeLock(s.lock)
	if err != nil {
		return fmt.Errorf("close sqlite: %w", err)
	}
	return nil
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// submit queues fn for the writer and waits until its batch has committed.
// fn runs inside the batch's transaction, under its own savepoint; what it
// writes into the caller's variables is valid only when submit returns nil.
func (s *Store) submit(ctx context.Context, fn func(*wtx) error) error {
	o := newOp(ctx, fn)
	o.due = 1
	return s.enqueue(ctx, o, s.w.queue)
}

// submitInsert queues a message insert that makes due deliveries due at
// once on the ingest queue (see writer), and waits until it has committed.
func (s *Store) submitInsert(ctx context.Context, due int, fn func(*wtx) error) error {
	o := newOp(ctx, fn)
	o.due, o.insert = due, true
	return s.enqueue(ctx, o, s.w.ingest)
}

func (s *Store) enqueue(ctx context.Context, o *op, queue chan *op) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	select {
	case queue <- o:
	case <-ctx.Done():
		s.mu.RUnlock()
		return ctx.Err()
	}
	s.mu.RUnlock()
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		// The op may still commit; the caller is told it does not know.
		return ctx.Err()
	}
}
