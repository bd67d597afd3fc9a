package sqlitestore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gcpmarketplace/gcpmarketplace/internal/migrationfiles"
)

// Migrations are files migrations/NNNN_name.sql, applied in order; the
// database's PRAGMA user_version is the number of the last one applied. To
// change the schema, add the next file: never edit one that has shipped.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// applicationID marks a SQLite file as a store of this package (PRAGMA
// application_id, "gcmp"), so that Open never migrates another program's
// database.
const applicationID = 0x67636d70

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
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	return ms, nil
}

// SchemaVersion is the schema version this package writes and understands.
func SchemaVersion() int { return len(migrations) }

// header is what identifies a database file as ours.
type header struct {
	appID   int64
	version int
	objects int // rows in sqlite_schema
}

func (s *Store) readHeader(ctx context.Context) (header, error) {
	var h header
	if err := s.conn.QueryRowContext(ctx, "PRAGMA application_id").Scan(&h.appID); err != nil {
		return h, err
	}
	if err := s.conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&h.version); err != nil {
		return h, err
	}
	if err := s.conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&h.objects); err != nil {
		return h, err
	}
	return h, nil
}

// checkHeader decides whether the file may be migrated: it must be a store
// of this package at a version we know, or a new, empty database.
func (s *Store) checkHeader(h header) error {
	switch {
	case h.appID == applicationID && h.version > SchemaVersion():
		return fmt.Errorf("sqlitestore: open %q: %w: database is at version %d, this build supports up to %d",
			s.path, ErrSchemaTooNew, h.version, SchemaVersion())
	case h.appID == applicationID:
		return nil
	case h.appID == 0 && h.version == 0 && h.objects == 0:
		return nil // new database
	default:
		return fmt.Errorf("sqlitestore: open %q: %w: SQLite database of another application (application_id %#x, user_version %d, %d schema objects)",
			s.path, ErrNotStore, h.appID, h.version, h.objects)
	}
}

func (s *Store) openError(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_NOTADB {
		return fmt.Errorf("sqlitestore: open %q: %w: %w", s.path, ErrNotStore, err)
	}
	return fmt.Errorf("sqlitestore: open %q: %w", s.path, err)
}

// migrate checks the file and brings its schema to SchemaVersion. Nothing is
// written before the file has been read and recognised: reading a file that
// is not a database fails with SQLITE_NOTADB, and only then are WAL mode and
// the migrations applied.
func (s *Store) migrate(ctx context.Context) error {
	h, err := s.readHeader(ctx)
	if err != nil {
		return s.openError(err)
	}
	if err := s.checkHeader(h); err != nil {
		return err
	}

	var mode string
	if err := s.conn.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return s.openError(err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlitestore: open %q: cannot use WAL mode (journal mode is %q); in-memory databases are not supported", s.path, mode)
	}
	if h.version == SchemaVersion() {
		return nil
	}

	// Another process may be migrating the same file: decide again under
	// the write lock.
	if _, err := s.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return s.openError(err)
	}
	if err := s.migrateLocked(ctx); err != nil {
		_, _ = s.conn.ExecContext(context.Background(), "ROLLBACK")
		return err
	}
	if _, err := s.conn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = s.conn.ExecContext(context.Background(), "ROLLBACK")
		return fmt.Errorf("sqlitestore: open %q: commit migrations: %w", s.path, err)
	}
	return nil
}

func (s *Store) migrateLocked(ctx context.Context) error {
	h, err := s.readHeader(ctx)
	if err != nil {
		return s.openError(err)
	}
	if err := s.checkHeader(h); err != nil {
		return err
	}
	for _, m := range migrations[h.version:] {
		if _, err := s.conn.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlitestore: open %q: migration %s: %w", s.path, m.Name, err)
		}
		s.log.InfoContext(ctx, "applied schema migration", slog.String("migration", m.Name))
	}
	// PRAGMA takes no bound parameters; both values are integers we own.
	set := fmt.Sprintf("PRAGMA application_id = %d; PRAGMA user_version = %d", applicationID, SchemaVersion())
	if _, err := s.conn.ExecContext(ctx, set); err != nil {
		return fmt.Errorf("sqlitestore: open %q: set schema version: %w", s.path, err)
	}
	return nil
}
