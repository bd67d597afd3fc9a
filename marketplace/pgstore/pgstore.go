// Package pgstore is the PostgreSQL marketplace.Store, for vendors that run
// several replicas of their backend against one database. It uses
// github.com/jackc/pgx/v5 through a pgxpool.Pool.
//
// # Replicas
//
// Every replica opens a Store on the same database and schema. What one
// process would get from its own locks, the store gets from PostgreSQL:
//
//   - Tx.Lock(key) takes pg_advisory_xact_lock on a 64-bit hash of the
//     schema and the key, so transactions locking one entitlement are
//     serialised across all replicas until they end.
//   - MarkProcessed is INSERT ... ON CONFLICT DO NOTHING inside the
//     transaction: when duplicates of one event run on two replicas at once,
//     the second insert waits for the first transaction and sees first=false
//     if it committed (first=true if it rolled back). Exactly one commits
//     with first=true.
//   - AdvanceEntitlement and EnqueueApproval are single upsert statements:
//     PostgreSQL locks the existing row and evaluates the updateTime guard
//     against its latest committed version, so a read-modify-write cannot
//     interleave. Approval sequence numbers come from an identity column,
//     which never hands out a number twice.
//   - LockKey (the marketplace.KeyLocker capability, which the processor
//     defines and looks for) holds a session-level pg_advisory_lock on a
//     connection taken from the pool for as long as the caller processes a
//     message, so duplicate deliveries on two replicas never run callbacks
//     at the same time.
//   - The usage ledger (ledger.Ledger of package usage/ledger, also implemented by Store) leases
//     sealed windows with FOR UPDATE SKIP LOCKED and an expiry, so each
//     window is reported by one replica and a dead replica's windows are
//     taken over when its lease ends; see ClaimWindows and Seal.
//
// Transactions run at READ COMMITTED. A serialization failure or deadlock
// (SQLSTATE 40001, 40P01) is returned as an error wrapping ErrConflict; InTx
// never runs fn a second time by itself, because fn may have effects outside
// the database. IsRetryable reports whether the caller may retry the whole
// unit of work.
//
// # Connection loss
//
// When PostgreSQL restarts or a connection is terminated, calls fail with an
// error wrapping ErrUnavailable (and the pgconn error), for which
// IsRetryable is true; the pool replaces dead connections, and InTx skips
// dead idle connections before it calls fn. A commit that fails this way
// has an unknown outcome: retry the whole unit of work, whose MarkProcessed
// makes the retry harmless. Committed data is PostgreSQL's to keep.
//
// # Pool sizing
//
// Each InTx holds one connection while fn runs, and each LockKey holds one
// until it is unlocked. A processor that holds a key lock while it runs a
// transaction needs two connections per message in flight: at least twice
// the processor's concurrency plus 2, or every connection can end up held
// by a key lock whose holder waits for another, for good. marketplace.New
// refuses a smaller pool (Store reports its size through MaxConns, the
// marketplace.ConnPool capability), saying what to change.
//
// Open sizes the pool it creates at DefaultMaxConns (34, enough for the
// processor's default concurrency of 16) unless the connection string sets
// pool_max_conns. pgxpool's own default, the larger of 4 and the number of
// CPUs, is too small; so with New, size the pool you pass yourself. The
// pool opens connections only as they are needed.
//
// The pools of every replica, and every other client of the server, must
// fit in PostgreSQL's max_connections together, less its reserved slots
// (superuser_reserved_connections, 3 by default):
//
//	replicas × pool_max_conns + other clients ≤ max_connections − reserved
//
// With the defaults (max_connections 100, 3 reserved), three replicas at
// DefaultMaxConns (102) do not fit: give each pool_max_conns=30 and
// Config.Concurrency 14, or raise max_connections. A pool that does not fit
// works until load makes it grow, then fails with "too many clients". New
// and Open therefore check the pool against the connections the server has
// left when they run (max_connections less reserved slots less connections
// other clients hold), and refuse a larger pool with a
// *ConnectionBudgetError (ErrConnectionBudget). Other replicas' pools open
// connections only as load needs them, so the check at start-up cannot see
// what they may grow to: the rule above is yours to keep.
//
// # Schema
//
// All tables live in one PostgreSQL schema, "gcpmarketplace" unless
// WithSchema says otherwise; it is created if missing. Migrations are
// embedded and applied when the store is opened, under an advisory lock so
// that replicas starting together do not race, and recorded in the table
// schema_migrations. A schema migrated by a newer version of this package is
// refused with ErrSchemaTooNew, and left untouched.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// DefaultSchema is the schema the store uses unless WithSchema is given.
const DefaultSchema = "gcpmarketplace"

// Errors of this package. Test with errors.Is, or use IsRetryable.
var (
	// ErrSchemaTooNew means the schema was migrated by a newer version of
	// this package. The store refuses to open it and changes nothing;
	// upgrade the program.
	ErrSchemaTooNew = errors.New("pgstore: database schema is newer than this version supports")

	// ErrUnavailable means PostgreSQL could not be reached or the
	// connection was lost (server restart, terminated backend, network
	// failure). The error also wraps the pgx/pgconn error. When a commit
	// fails this way, whether it took effect is unknown. Retrying the
	// whole unit of work is safe when it is idempotent, as event
	// processing is through MarkProcessed.
	ErrUnavailable = errors.New("pgstore: database unavailable")

	// ErrConflict means PostgreSQL aborted the transaction to resolve a
	// deadlock or serialization failure (SQLSTATE 40P01 or 40001). Nothing
	// of the transaction was kept; run it again.
	ErrConflict = errors.New("pgstore: transaction aborted by a concurrent one (deadlock or serialization failure)")
)

// IsRetryable reports whether err is a failure of the database that a later
// attempt may not meet: ErrUnavailable or ErrConflict. Errors of the
// caller's (context cancellation, ErrInvalid, ErrNotFound, ErrClosed) are
// not retryable.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrConflict)
}

type config struct {
	schema string
	logger *slog.Logger
}

// Option configures New and Open.
type Option func(*config)

// WithSchema sets the PostgreSQL schema holding the store's tables (default
// DefaultSchema). The name must be a lower-case SQL identifier (letters a-z,
// digits, underscores, not starting with a digit or "pg_", at most 63
// bytes), so that it needs no quoting in psql. The schema is created if it
// does not exist; the role needs the CREATE privilege on the database for
// that, or on the schema if a DBA created it beforehand.
func WithSchema(name string) Option {
	return func(c *config) { c.schema = name }
}

// WithLogger sets the logger for migrations and connection problems. The
// default is slog.Default() when the store is opened; pass
// slog.New(slog.DiscardHandler) to discard.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

var schemaPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// validateSchema accepts the identifiers that PostgreSQL takes unquoted and
// unchanged, and that CREATE SCHEMA allows.
func validateSchema(name string) error {
	if !schemaPattern.MatchString(name) {
		return fmt.Errorf("pgstore: schema name %q: want 1 to 63 characters a-z, 0-9 or _, not starting with a digit: %w", name, marketplace.ErrInvalid)
	}
	if strings.HasPrefix(name, "pg_") {
		return fmt.Errorf("pgstore: schema name %q: the pg_ prefix is reserved for system schemas: %w", name, marketplace.ErrInvalid)
	}
	return nil
}

// Store is a marketplace.Store in a PostgreSQL schema. Create it with New or
// Open; it is safe for concurrent use, and any number of Stores, in any
// number of processes, may share one schema.
type Store struct {
	pool     *pgxpool.Pool
	ownsPool bool
	schema   string
	log      *slog.Logger
	q        queries
	lq       ledgerQueries
	maxConns int // of the pool, fixed at its creation

	mu        sync.Mutex
	closed    bool
	running   sync.WaitGroup // transactions and key locks in progress
	closeOnce sync.Once
}

var (
	_ marketplace.Store     = (*Store)(nil)
	_ marketplace.KeyLocker = (*Store)(nil)
	_ marketplace.ConnPool  = (*Store)(nil)
	_ marketplace.Tx        = (*tx)(nil)
)

// New returns a store using pool, after migrating its schema to the current
// version. The caller keeps ownership of pool: Close does not close it.
//
// New fails with an error wrapping ErrSchemaTooNew if the schema was
// migrated by a newer version of this package, marketplace.ErrInvalid for a
// bad schema name, ErrUnavailable if PostgreSQL cannot be reached, and
// ErrConnectionBudget if the pool is larger than the connections the server
// has left (see "Pool sizing").
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	if pool == nil {
		return nil, fmt.Errorf("pgstore: new: nil pool: %w", marketplace.ErrInvalid)
	}
	return newStore(ctx, pool, false, opts)
}

// DefaultMaxConns is the size of the pool Open creates when the connection
// string sets no pool_max_conns: twice the processor's default concurrency
// (16) plus 2 (see marketplace.ConnPool).
const DefaultMaxConns = 34

// Open connects to the database at connString (a URL or keyword/value
// string, see pgxpool.ParseConfig; pool settings such as pool_max_conns
// included) and returns a store that owns the pool: Close closes it. The
// pool holds pool_max_conns connections at most, DefaultMaxConns if the
// string does not say. Otherwise it is New.
func Open(ctx context.Context, connString string, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// The parse error redacts passwords; connString itself is not repeated.
		return nil, fmt.Errorf("pgstore: open: %w: %w", marketplace.ErrInvalid, err)
	}
	if !setsMaxConns(connString) {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: open: %w", interpretError(err))
	}
	s, err := newStore(ctx, pool, true, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// setsMaxConns reports whether connString sets pool_max_conns. pgxpool's
// Config does not say whether its MaxConns is a default, but the
// connection parser keeps every parameter it does not know, pgxpool's
// among them, as a runtime parameter.
func setsMaxConns(connString string) bool {
	cc, err := pgconn.ParseConfig(connString)
	if err != nil {
		return false // unreachable: pgxpool.ParseConfig accepted it
	}
	_, ok := cc.RuntimeParams["pool_max_conns"]
	return ok
}

func newStore(ctx context.Context, pool *pgxpool.Pool, owns bool, opts []Option) (*Store, error) {
	cfg := config{schema: DefaultSchema, logger: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	if err := validateSchema(cfg.schema); err != nil {
		return nil, err
	}
	s := &Store{
		pool:     pool,
		ownsPool: owns,
		schema:   cfg.schema,
		log:      cfg.logger.With(slog.String("store", "postgres"), slog.String("schema", cfg.schema)),
		q:        newQueries(pgx.Identifier{cfg.schema}.Sanitize()),
		lq:       newLedgerQueries(pgx.Identifier{cfg.schema}.Sanitize()),
		maxConns: int(pool.Config().MaxConns), // Config copies: read it once
	}
	if err := checkBudget(ctx, pool); err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Schema returns the name of the PostgreSQL schema holding the store.
func (s *Store) Schema() string { return s.schema }

// MaxConns implements marketplace.ConnPool: it reports the pool's maximum
// size (pool_max_conns, pgxpool.Config.MaxConns), which marketplace.New
// checks against the processor's concurrency, since the key locks and
// transactions of the messages in flight share the pool.
func (s *Store) MaxConns() int { return s.maxConns }

// enter registers an operation that Close must wait for.
func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return marketplace.ErrClosed
	}
	s.running.Add(1)
	return nil
}

// Close waits for running transactions and held key locks to end, then
// closes the pool if the store owns it (Open). Later calls fail with
// marketplace.ErrClosed. Only the first call does anything; later calls
// return nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.running.Wait()
		if s.ownsPool {
			s.pool.Close()
		}
	})
	return nil
}

// InTx runs fn in a READ COMMITTED transaction on one pooled connection; see
// marketplace.Store. Unlike the embedded stores, transactions run
// concurrently: use Tx.Lock to serialise those touching the same entity.
//
// InTx does not run fn again by itself: an error wrapping ErrConflict or
// ErrUnavailable (IsRetryable) is for the caller to retry. COMMIT and
// ROLLBACK run even if ctx is done by the time fn returns.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx marketplace.Tx) error) error {
	if err := s.enter(); err != nil {
		return fmt.Errorf("pgstore: begin transaction: %w", err)
	}
	defer s.running.Done()
	if err := ctx.Err(); err != nil {
		return err
	}
	pgtx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: begin transaction: %w", err)
	}
	t := &tx{s: s, pgtx: pgtx}
	committed := false
	defer func() {
		if committed {
			return
		}
		t.end()
		// Runs on panic too; the panic then continues. A failed rollback
		// closes the connection, which rolls back on the server.
		_ = pgtx.Rollback(context.WithoutCancel(ctx))
	}()

	if err := fn(ctx, t); err != nil {
		return err
	}

	failed := t.end()
	// Once fn has succeeded, a cancellation must not leave the outcome
	// unknown: COMMIT runs to its end, bounded like any statement on the
	// connection by the network (a context without Done also spares pgx a
	// watcher goroutine per statement).
	err = pgtx.Commit(context.WithoutCancel(ctx))
	committed = true
	switch {
	case err == nil:
		return nil
	case failed != nil:
		// fn went on after a statement failed; PostgreSQL had already
		// aborted the transaction, so COMMIT rolled it back.
		return fmt.Errorf("pgstore: commit: transaction was aborted by an earlier error: %w", interpretError(failed))
	case errors.Is(err, pgx.ErrTxCommitRollback):
		return fmt.Errorf("pgstore: commit: transaction was rolled back by the server: %w", err)
	default:
		return fmt.Errorf("pgstore: commit: %w", interpretError(err))
	}
}

// begin starts a transaction. A connection the server dropped while it sat
// idle in the pool (restart, pg_terminate_backend) fails on first use and
// is discarded by the pool; begin then tries the next one, up to the pool
// size. Nothing of the caller's has run yet, so this retries no work.
func (s *Store) begin(ctx context.Context) (pgx.Tx, error) {
	attempts := s.maxConns + 1
	for i := 1; ; i++ {
		pgtx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
		if err == nil {
			return pgtx, nil
		}
		if !retryOnFreshConn(ctx, err) || i >= attempts {
			return nil, interpretError(err)
		}
		s.log.WarnContext(ctx, "discarding a dead pooled connection", slog.Any("error", err))
	}
}

// retryOnFreshConn reports whether err came from a pooled connection that
// the server has closed, so that another connection may work. A failure to
// connect says the server is down: no point in trying again at once.
func retryOnFreshConn(ctx context.Context, err error) bool {
	var connectErr *pgconn.ConnectError
	return ctx.Err() == nil && errors.Is(interpretError(err), ErrUnavailable) && !errors.As(err, &connectErr)
}

// interpretError translates pgx errors into the marketplace sentinels and
// this package's retryable classes. Everything else passes through for
// wrapping; the original error stays reachable with errors.As.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return marketplace.ErrNotFound
	case errors.Is(err, puddle.ErrClosedPool):
		return fmt.Errorf("%w: %w", marketplace.ErrClosed, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch code := pgErr.Code; {
		case code == "40001", code == "40P01":
			return fmt.Errorf("%w: %w", ErrConflict, err)
		case strings.HasPrefix(code, "08"), // connection exception
			code == "57P01", // admin_shutdown (also pg_terminate_backend)
			code == "57P02", // crash_shutdown
			code == "57P03", // cannot_connect_now (starting up, shutting down)
			code == "53300": // too_many_connections
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	var (
		connectErr *pgconn.ConnectError
		netErr     net.Error
	)
	switch {
	case pgconn.SafeToRetry(err), // failed before anything was sent, e.g. conn closed
		errors.As(err, &connectErr),
		errors.As(err, &netErr),
		errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}
