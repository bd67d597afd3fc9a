// Package sqlitestore is the embedded default marketplace.Store: one SQLite
// file, through modernc.org/sqlite (pure Go, no cgo).
//
// # Durability
//
// The database runs in WAL mode. By default every commit is synchronous=FULL:
// a transaction for which InTx returned nil survives both a crash of the
// process and a power loss. WithSynchronous(SyncNormal) is faster but, while
// it still survives a process crash (SIGKILL), can lose the most recent
// commits on power loss or an operating system crash. The store holds money
// (which events were applied, which entitlements exist), so FULL is the
// default and the throughput comes from group commit instead.
//
// # Group commit
//
// SQLite allows one writer at a time, so the store has exactly one: a
// goroutine that owns the only connection. InTx hands it a request; the
// writer collects the requests that are waiting (up to WithMaxBatch), opens
// one SQLite transaction with BEGIN IMMEDIATE, and gives each caller its turn
// in order. The caller's fn runs in the caller's goroutine inside its own
// SAVEPOINT: an error or panic rolls back to that savepoint, so only that
// caller's work is undone. One COMMIT then makes the whole batch durable with
// one fsync, and every caller whose fn succeeded is released with the
// commit's result. If the COMMIT fails, every one of them gets the error and
// none of their work is kept.
//
// While a caller's fn runs, the writer waits for it: fn must be short and
// must not call InTx or Close on the same store (that deadlocks).
//
// Callers never see SQLITE_BUSY: within the process there is no second
// writer, and a second process sharing the file waits on the busy timeout
// (5 s) for BEGIN IMMEDIATE.
//
// Because every transaction holds SQLite's write lock from BEGIN IMMEDIATE to
// COMMIT, transactions are serialised across goroutines and processes, and
// Tx.Lock has nothing left to do: it only validates its argument.
//
// # Reads
//
// View (marketplace.Viewer) runs read-only transactions on a separate pool
// of 4 connections that cannot write (PRAGMA query_only): the writer's stays
// the only connection that writes. In WAL mode each View reads the last
// commit made before its first statement, beside the writer and without
// waiting for it, so reads do not queue behind group commits.
//
// # Schema
//
// Migrations are embedded; Open applies the pending ones in one transaction
// and records the version in PRAGMA user_version. Open refuses, without
// modifying the file, a database written by a newer version of this package
// (ErrSchemaTooNew) and a file that is not a store of this package
// (ErrNotStore), such as a text file or another application's database.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Errors returned by Open.
var (
	// ErrSchemaTooNew means the database was migrated by a newer version of
	// this package. Open leaves it untouched; upgrade the program.
	ErrSchemaTooNew = errors.New("sqlitestore: database schema is newer than this version supports")
	// ErrNotStore means the file is not a SQLite database, or is a database
	// that belongs to something else. Open leaves it untouched.
	ErrNotStore = errors.New("sqlitestore: file is not a gcpmarketplace store")
)

// Synchronous is SQLite's synchronous setting for the store's commits.
type Synchronous int

// Synchronous levels. The values are SQLite's.
const (
	// SyncNormal survives a process crash but may lose the latest
	// commits on power loss.
	SyncNormal Synchronous = 1
	// SyncFull survives process crashes and power loss. The default.
	SyncFull Synchronous = 2
)

// String returns SQLite's name for the level, as used in PRAGMA synchronous.
func (s Synchronous) String() string {
	switch s {
	case SyncNormal:
		return "NORMAL"
	case SyncFull:
		return "FULL"
	default:
		return fmt.Sprintf("Synchronous(%d)", int(s))
	}
}

// DefaultMaxBatch is how many transactions share one commit by default.
const DefaultMaxBatch = 64

// busyTimeoutMillis bounds how long BEGIN IMMEDIATE waits for another
// process holding the write lock.
const busyTimeoutMillis = 5000

type config struct {
	logger   *slog.Logger
	maxBatch int
	sync     Synchronous
}

// Option configures Open.
type Option func(*config)

// WithLogger sets the logger for migrations and commit failures. The default
// is slog.Default() when the store is opened; pass
// slog.New(slog.DiscardHandler) to discard.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithMaxBatch sets how many transactions may share one commit (default
// DefaultMaxBatch). 1 disables group commit: every transaction gets its own
// commit and fsync. Values below 1 mean 1.
func WithMaxBatch(n int) Option {
	return func(c *config) { c.maxBatch = max(n, 1) }
}

// WithSynchronous sets the durability of commits (default SyncFull). See the
// package documentation for the trade-off.
func WithSynchronous(s Synchronous) Option {
	return func(c *config) { c.sync = s }
}

// Store is a marketplace.Store in one SQLite file. Create it with Open; it is
// safe for concurrent use.
type Store struct {
	path     string
	log      *slog.Logger
	maxBatch int

	db      *sql.DB
	conn    *sql.Conn // the writer's connection, and the only one that writes
	stmts   *statements
	readers *readers // read-only connections for View (read.go)

	requests   chan *request // unbuffered: the writer drains waiting senders
	closing    chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once

	testHookBatch func(kept int, err error) // called by the writer after each commit

	ledgerStmts map[string]*sql.Stmt // ledger.Ledger statements (ledger.go), used only in a writer turn
	adds        addCombiner          // concurrent AddUsage calls share a turn (ledger.go)
}

var _ marketplace.Store = (*Store)(nil)

// Open opens the store in the SQLite file at path, creating the file if it
// does not exist and migrating its schema to the current version.
//
// Open fails with an error wrapping ErrNotStore if the file is not a
// database of this package, and ErrSchemaTooNew if it was written by a newer
// version; in both cases the file is not modified. The store must be closed
// with Close.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := config{
		logger:   slog.Default(),
		maxBatch: DefaultMaxBatch,
		sync:     SyncFull,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if path == "" {
		return nil, fmt.Errorf("sqlitestore: open: empty path: %w", marketplace.ErrInvalid)
	}
	if cfg.sync != SyncFull && cfg.sync != SyncNormal {
		return nil, fmt.Errorf("sqlitestore: open %q: unsupported %v: %w", path, cfg.sync, marketplace.ErrInvalid)
	}

	db, err := sql.Open("sqlite", dsn(path, cfg.sync))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %q: %w", path, err)
	}
	// One connection, held by the writer for the store's lifetime.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	s := &Store{
		path:       path,
		log:        cfg.logger.With(slog.String("store", "sqlite"), slog.String("path", path)),
		maxBatch:   cfg.maxBatch,
		db:         db,
		requests:   make(chan *request),
		closing:    make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	if err := s.open(ctx); err != nil {
		if s.readers != nil {
			_ = s.readers.close()
		}
		if s.stmts != nil {
			s.stmts.close()
		}
		if s.conn != nil {
			_ = s.conn.Close()
		}
		_ = db.Close()
		return nil, err
	}
	go s.writer()
	return s, nil
}

func (s *Store) open(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.openError(err)
	}
	s.conn = conn
	if err := s.migrate(ctx); err != nil {
		return err
	}
	stmts, err := prepareStatements(ctx, conn)
	if err != nil {
		return fmt.Errorf("sqlitestore: open %q: %w", s.path, err)
	}
	s.stmts = stmts
	if s.readers, err = openReaders(ctx, s.path); err != nil {
		return fmt.Errorf("sqlitestore: open %q: %w", s.path, err)
	}
	return nil
}

// dsn builds a modernc.org/sqlite URI name. The _pragma values are applied
// by the driver to every new connection; journal_mode is not among them
// because switching a file to WAL writes to it, and Open must first check
// that the file is its own (see migrate).
func dsn(path string, sync Synchronous) string {
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=synchronous(%s)",
		escaped, busyTimeoutMillis, sync)
}

// Close stops the writer after the transactions it has accepted, waits for
// running Views, then closes the database. Later InTx and View calls fail
// with marketplace.ErrClosed.
// Only the first call does anything; later calls return nil.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closing)
		<-s.writerDone
		rerr := s.readers.close() // waits for running Views
		s.stmts.close()
		// Closing the last connection checkpoints the WAL into the
		// database file and removes it.
		err = errors.Join(rerr, s.conn.Close(), s.db.Close())
		if err != nil {
			err = fmt.Errorf("sqlitestore: close %q: %w", s.path, err)
		}
	})
	return err
}

// interpretError translates database/sql errors into the marketplace
// sentinels; everything else passes through for wrapping.
func interpretError(err error) error {
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return marketplace.ErrNotFound
	case errors.Is(err, sql.ErrConnDone):
		return marketplace.ErrClosed
	}
	return err
}
