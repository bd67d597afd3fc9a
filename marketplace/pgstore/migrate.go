package pgstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/gcpmarketplace/gcpmarketplace/internal/migrationfiles"
)

// Migrations are files migrations/NNNN_name.sql, applied in order inside one
// transaction with search_path set to the store's schema, each recorded as a
// row of schema_migrations. To change the schema, add the next file: never
// edit one that has shipped.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration = migrationfiles.Migration

// migrations is the embedded list, checked to be numbered 1..n.
var migrations = mustLoadMigrations()

func mustLoadMigrations() []migration {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		panic(err) // the embedded files are part of the build
	}
	return ms
}

func loadMigrations(fsys fs.FS) ([]migration, error) {
	ms, err := migrationfiles.Load(fsys)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return ms, nil
}

// SchemaVersion is the schema version this package writes and understands.
func SchemaVersion() int { return len(migrations) }

// querier is what reading the version needs: the pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// schemaVersion returns the highest version recorded in the schema, 0 if the
// schema or its schema_migrations table does not exist.
func (s *Store) schemaVersion(ctx context.Context, q querier) (int, error) {
	// Not to_regclass: it answers from the session's catalog cache, which
	// may predate the migration another replica committed while this one
	// waited for the lock. A query on pg_class takes a fresh snapshot.
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = 'schema_migrations')`, s.schema).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int
	err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+s.q.migrationsTable).Scan(&v)
	return v, err
}

func (s *Store) tooNew(v int) error {
	return fmt.Errorf("pgstore: open schema %q: %w: schema is at version %d, this build supports up to %d",
		s.schema, ErrSchemaTooNew, v, SchemaVersion())
}

// migrate brings the schema to SchemaVersion. The common case, a schema
// already current, costs two reads and takes no lock. Otherwise the work
// runs in one transaction under an advisory lock, and the version is read
// again under it: of replicas starting together, one migrates and the
// others find the work done. A failure rolls everything back (PostgreSQL
// DDL is transactional).
func (s *Store) migrate(ctx context.Context) error {
	v, err := s.schemaVersion(ctx, s.pool)
	if err != nil {
		return fmt.Errorf("pgstore: open schema %q: read schema version: %w", s.schema, interpretError(err))
	}
	switch {
	case v > SchemaVersion():
		return s.tooNew(v)
	case v == SchemaVersion():
		return nil
	}

	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: open schema %q: %w", s.schema, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := s.migrateLocked(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: open schema %q: commit migrations: %w", s.schema, interpretError(err))
	}
	return nil
}

func (s *Store) migrateLocked(ctx context.Context, tx pgx.Tx) error {
	fail := func(what string, err error) error {
		return fmt.Errorf("pgstore: open schema %q: %s: %w", s.schema, what, interpretError(err))
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.lockID(nsMigrate, "")); err != nil {
		return fail("lock for migration", err)
	}
	v, err := s.schemaVersion(ctx, tx)
	if err != nil {
		return fail("read schema version", err)
	}
	switch {
	case v > SchemaVersion():
		return s.tooNew(v)
	case v == SchemaVersion():
		return nil // another replica migrated while we waited
	}

	// CREATE SCHEMA IF NOT EXISTS would need the CREATE privilege on the
	// database even when a DBA has created the schema already.
	var schemaExists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s.schema).Scan(&schemaExists); err != nil {
		return fail("look up schema", err)
	}
	if !schemaExists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+s.q.schema); err != nil {
			return fail("create schema", err)
		}
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+s.q.migrationsTable+` (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fail("create schema_migrations", err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+s.q.schema); err != nil {
		return fail("set search_path", err)
	}
	for _, m := range migrations[v:] {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fail("migration "+m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+s.q.migrationsTable+" (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			return fail("record migration "+m.Name, err)
		}
		s.log.InfoContext(ctx, "applied schema migration", slog.String("migration", m.Name))
	}
	return nil
}
