package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandem-run/tandem/internal/store"
)

// Config configures Open.
type Config struct {
	// DSN is a postgres:// URL or a key=value string. Required. Pool
	// settings in it (pool_max_conns, ...) apply unless the fields below
	// override them; connect_timeout defaults to 5s.
	DSN string
	// MaxConns caps the connection pool. Default: pool_max_conns from the
	// DSN, else pgxpool's default (the greater of 4 and the CPU count).
	MaxConns int32
	// Schema, when set, is the schema every table lives in: it is created if
	// missing and set as each connection's search_path, and it scopes the
	// migration lock and the notification channel. Default: the DSN's
	// search_path when that is one plain lowercase name (so a DSN with
	// search_path=tandem gets the same treatment), else none. Tests give
	// each test its own schema.
	Schema string
	// Logger receives the store's few log lines (migrations applied, the
	// listener reconnecting). Default slog.Default().
	Logger *slog.Logger
	// OnBatch, when set, is called after each group commit of MessageInsert
	// calls with the number of calls it committed (for metrics). Default nil.
	OnBatch func(ops int)
	// SkipMigrate leaves the schema as it is at Open (for `tandem migrate`
	// runs and for replicas that must not change it). Default false.
	SkipMigrate bool
	// Writers is the number of goroutines that group-commit MessageInsert
	// calls; DeliveryComplete calls have one of their own. Default 2
	// (measured best on a 2-core machine: 4 or 8 make smaller batches).
	Writers int
	// MaxBatch caps the calls one group commit takes. Default 256.
	MaxBatch int
	// UnsafeAsyncCommit leaves synchronous_commit as the DSN, role or
	// database set it (store.unsafe_async_commit). Without it every
	// session runs synchronous_commit=on, so a COMMIT returns only after
	// the WAL is flushed, and a session that still reports off is refused.
	// Default false.
	UnsafeAsyncCommit bool
}

// Store is the PostgreSQL store.Store, safe for concurrent use by several
// processes on one database.
type Store struct {
	pool    *pgxpool.Pool
	cfg     Config
	log     *slog.Logger
	addr    string // host:port/database, for messages
	channel string // NOTIFY channel

	notes     *notifier
	replicas  *replicaSet
	inserts   *batcher[insertOp]
	completes *batcher[completeOp]
	analyze   *analyzer

	closeOnce sync.Once
	closed    chan struct{}
	listenMu  sync.Mutex // orders Listen's Add against Close's Wait
	listeners sync.WaitGroup
}

var _ store.Store = (*Store)(nil)

// errClosed is returned by every call after Close; the API answers it
// like an outage (503), which is what a draining replica wants.
var errClosed = fmt.Errorf("postgres: closed: %w", store.ErrUnavailable)

// Open connects to PostgreSQL, checks the connection, and, unless
// cfg.SkipMigrate, brings the schema up to date. A connection failure is
// returned as one line naming the server and the cause, wrapping
// store.ErrUnavailable.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DSN == "" {
		return nil, errors.New("open postgres: dsn is empty")
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// Not wrapped: the parser's message may quote the DSN, password
		// and all, and config secrets are never logged.
		return nil, errors.New("open postgres: the dsn cannot be parsed (not shown: it may hold a password)")
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if cfg.Schema == "" {
		cfg.Schema = plainSchema(pc.ConnConfig.RuntimeParams["search_path"])
	}
	if cfg.Schema != "" {
		pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize()
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = "tandem"
	}
	if _, ok := pc.ConnConfig.RuntimeParams["plan_cache_mode"]; !ok {
		// Every statement planned with its values: a cached generic plan
		// is made once per connection, from the row counts of that moment,
		// and kept while the table grows from empty to a backlog (measured:
		// the claim sorted 10,928 rows to take 8, and one replica drained
		// at half the rate). Planning these statements costs far less.
		pc.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	if !cfg.UnsafeAsyncCommit {
		// A parameter in the startup packet wins over a role's or a
		// database's default; the check after connect catches what could
		// still win over it (an "options" parameter in the DSN).
		pc.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
		pc.AfterConnect = checkSynchronousCommit
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 2
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Store{
		cfg:      cfg,
		log:      log,
		addr:     serverAddr(pc.ConnConfig),
		channel:  channelName(cfg.Schema),
		closed:   make(chan struct{}),
		replicas: newReplicaSet(),
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, s.connectError(err)
	}
	if err := s.pool.Ping(ctx); err != nil {
		s.pool.Close()
		return nil, s.connectError(err)
	}
	if !cfg.SkipMigrate {
		if err := s.Migrate(ctx); err != nil {
			s.pool.Close()
			return nil, err
		}
	}
	s.notes = newNotifier(s)
	s.analyze = newAnalyzer(ctx, s)
	s.inserts = newBatcher(cfg.Writers, cfg.MaxBatch, s.closed, s.runInserts)
	// One writer for completes: two batches completing siblings of one
	// message would queue on its row lock anyway, and one writer lets
	// them share a batch instead (measured: as fast or faster than 2 or 4).
	s.completes = newBatcher(1, cfg.MaxBatch, s.closed, s.runCompletes)
	return s, nil
}

// Close stops taking calls, waits for the group commits in progress,
// removes the replica rows this store heartbeated for (see Heartbeat),
// stops the listeners and closes the pool. It may be called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.inserts.wait()
		s.completes.wait()
		s.analyze.wait()
		s.leaveAll()
		s.notes.stop()
		s.listenMu.Lock()
		s.listeners.Wait()
		s.listenMu.Unlock()
		s.pool.Close()
	})
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// batchTimeout bounds one group commit, and opTimeout any other call whose
// context has no deadline: the engine calls without one, and a database
// that silently stopped answering must turn into ErrUnavailable, not a
// worker stuck until TCP gives up.
const (
	batchTimeout = 30 * time.Second
	opTimeout    = 30 * time.Second
)

// errAsyncCommit is a session that would acknowledge a commit before its
// WAL is flushed.
var errAsyncCommit = errors.New("synchronous_commit is off for tandem's session (set by the DSN's options): an acknowledged message could be lost in a crash; remove it, or set store.unsafe_async_commit: true")

// checkSynchronousCommit refuses a connection whose session does not flush
// the WAL before COMMIT returns.
func checkSynchronousCommit(ctx context.Context, c *pgx.Conn) error {
	var v string
	if err := c.QueryRow(ctx, "SHOW synchronous_commit").Scan(&v); err != nil {
		return err
	}
	if v == "off" {
		return errAsyncCommit
	}
	return nil
}

// bounded returns ctx with opTimeout unless it already has a deadline.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, opTimeout)
}

func (s *Store) checkOpen() error {
	select {
	case <-s.closed:
		return errClosed
	default:
		return nil
	}
}

// Pool returns the connection pool, for tools and tests that need plain SQL.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// channelName is the NOTIFY channel: one per schema, so stores on separate
// schemas of one database never wake each other.
func channelName(schema string) string {
	if schema == "" {
		return "tandem_ready"
	}
	return "tandem_ready_" + schema
}

// plainSchema returns search_path when it names one schema by a plain
// lowercase identifier, which PostgreSQL reads the same quoted or not; else
// "" (a list, "$user", or a name that quoting would change).
func plainSchema(searchPath string) string {
	name := strings.TrimSpace(searchPath)
	if name == "" || len(name) > 63 {
		return ""
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return ""
		}
	}
	return name
}

func serverAddr(c *pgx.ConnConfig) string {
	return net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port))) + "/" + c.Database
}

// connectError turns a failure to reach the server at start-up into one
// line: "connect postgres HOST:PORT/DB: what failed".
func (s *Store) connectError(err error) error {
	return &connectError{addr: s.addr, what: connectCause(err), err: err}
}

type connectError struct {
	addr, what string
	err        error
}

func (e *connectError) Error() string {
	return "connect postgres " + e.addr + ": " + e.what
}

func (e *connectError) Unwrap() []error { return []error{store.ErrUnavailable, e.err} }

// connectCause says in a few words why a connection attempt failed.
func connectCause(err error) string {
	if errors.Is(err, errAsyncCommit) {
		return errAsyncCommit.Error()
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.Error()
	}
	var sysErr *os.SyscallError
	if errors.As(err, &sysErr) {
		return sysErr.Err.Error() // "connection refused", not "connect: connection refused"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return "timed out"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// wrap adds what to err, and marks errors that mean the database cannot be
// reached (refused connection, server shutting down, pool closed) with
// store.ErrUnavailable so the API answers 503.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %w: %w", what, store.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func unavailable(err error) bool {
	if errors.Is(err, store.ErrUnavailable) {
		return false // already marked
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"),                                 // insufficient resources: too many connections, disk full
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutting down, starting up
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "unexpected EOF") ||
		strings.Contains(msg, "closed pool") || strings.Contains(msg, "broken pipe")
}

// retryable reports a transaction that lost a race (deadlock, serialization)
// and may simply run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
