package sqlitestore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
)

// rawExec runs statements on the file with a plain connection, bypassing
// the store.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	for _, s := range stmts {
		_, err := db.Exec(s)
		require.NoError(t, err, s)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func TestOpenRejectsWithoutModifying(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr error
		wantMsg string
	}{
		{
			name: "text file",
			prepare: func(t *testing.T, path string) {
				require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte("this is not a database\n"), 500), 0o600))
			},
			wantErr: sqlitestore.ErrNotStore,
			wantMsg: "not a database",
		},
		{
			name: "short binary file",
			prepare: func(t *testing.T, path string) {
				require.NoError(t, os.WriteFile(path, []byte{0x00, 0x01, 0xfe, 0xff, 'S', 'Q', 'L'}, 0o600))
			},
			wantErr: sqlitestore.ErrNotStore,
		},
		{
			name: "another application's database",
			prepare: func(t *testing.T, path string) {
				rawExec(t, path, "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER)", "INSERT INTO invoices VALUES (1, 100)")
			},
			wantErr: sqlitestore.ErrNotStore,
			wantMsg: "another application",
		},
		{
			name: "schema from a newer version",
			prepare: func(t *testing.T, path string) {
				s, err := sqlitestore.Open(context.Background(), path)
				require.NoError(t, err)
				require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
					return tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"})
				}))
				require.NoError(t, s.Close())
				rawExec(t, path, fmt.Sprintf("PRAGMA user_version = %d", sqlitestore.SchemaVersion()+1))
			},
			wantErr: sqlitestore.ErrSchemaTooNew,
			wantMsg: fmt.Sprintf("database is at version %d, this build supports up to %d", sqlitestore.SchemaVersion()+1, sqlitestore.SchemaVersion()),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "store.db")
			tt.prepare(t, path)
			before := readFile(t, path)

			s, err := sqlitestore.Open(context.Background(), path)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.ErrorIs(t, err, tt.wantErr)
			assert.Contains(t, err.Error(), path, "the error names the file")
			assert.Contains(t, err.Error(), tt.wantMsg)
			assert.Equal(t, before, readFile(t, path), "file modified")
			entries, err := os.ReadDir(filepath.Dir(path))
			require.NoError(t, err)
			assert.Len(t, entries, 1, "files left beside the database: %v", entries)

			// Still refused, still untouched, the second time.
			_, err = sqlitestore.Open(context.Background(), path)
			assert.ErrorIs(t, err, tt.wantErr)
			assert.Equal(t, before, readFile(t, path), "file modified")
		})
	}
}

func TestOpenEmptyPath(t *testing.T) {
	t.Parallel()
	_, err := sqlitestore.Open(context.Background(), "")
	require.ErrorIs(t, err, marketplace.ErrInvalid)
}

func TestOpenMissingDirectory(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "store.db")
	_, err := sqlitestore.Open(context.Background(), path)
	require.Error(t, err)
	assert.NotErrorIs(t, err, sqlitestore.ErrNotStore)
	assert.Contains(t, err.Error(), path)
}

func TestOpenEmptyFileAndOddPath(t *testing.T) {
	t.Parallel()
	// An existing empty file is a new database; '?', '#' and '%' in the
	// path must not be taken for URI syntax.
	path := filepath.Join(t.TempDir(), "odd ?name#50%.db")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	s := openAt(t, path)
	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		return tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"})
	}))
	require.NoError(t, s.Close())
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Positive(t, st.Size(), "the database was written to the named file")

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no stray files: %v", entries)
}

func TestOpenSetsPragmas(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		opts []sqlitestore.Option
		want int
	}{
		{nil, 2},
		{[]sqlitestore.Option{sqlitestore.WithSynchronous(sqlitestore.SyncNormal)}, 1},
	} {
		path := filepath.Join(t.TempDir(), "store.db")
		s := openAt(t, path, tt.opts...)
		require.NoError(t, s.Close())
		// journal_mode and the version markers persist in the file.
		db, err := sql.Open("sqlite", path)
		require.NoError(t, err)
		var mode string
		var version, appID int
		require.NoError(t, db.QueryRow("PRAGMA journal_mode").Scan(&mode))
		require.NoError(t, db.QueryRow("PRAGMA user_version").Scan(&version))
		require.NoError(t, db.QueryRow("PRAGMA application_id").Scan(&appID))
		require.NoError(t, db.Close())
		assert.Equal(t, "wal", mode)
		assert.Equal(t, sqlitestore.SchemaVersion(), version)
		assert.Equal(t, 0x67636d70, appID)
	}
	_, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"), sqlitestore.WithSynchronous(sqlitestore.Synchronous(0)))
	require.ErrorIs(t, err, marketplace.ErrInvalid)
}

func TestOpenAppliesMigrationsOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	for i := range 3 {
		s := openAt(t, path)
		require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
			first, err := tx.MarkProcessed(ctx, fmt.Sprintf("ev-%d", i), time.Now())
			if err == nil && !first {
				err = errors.New("not first")
			}
			return err
		}))
		require.NoError(t, s.Close())
	}
}

func TestCloseStopsWriter(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	settle := func() int {
		runtime.GC()
		return runtime.NumGoroutine()
	}
	before := settle()
	for range 5 {
		s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"))
		require.NoError(t, err)
		require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
			return tx.PutAccount(ctx, marketplace.Account{ID: "a"})
		}))
		require.NoError(t, s.Close())
	}
	var after int
	for range 100 {
		if after = settle(); after <= before {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	assert.LessOrEqual(t, after, before, "goroutines leaked by Open/Close")
}

func TestCloseWaitsForRunningTransaction(t *testing.T) {
	t.Parallel()
	s := openAt(t, filepath.Join(t.TempDir(), "store.db"))
	inFn := make(chan struct{})
	release := make(chan struct{})
	txErr := make(chan error, 1)
	go func() {
		txErr <- s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
			close(inFn)
			<-release
			return tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"})
		})
	}()
	<-inFn
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
		t.Fatal("Close returned while a transaction was running")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-txErr, "the running transaction commits")
	require.NoError(t, <-closed)
	err := s.InTx(context.Background(), func(context.Context, marketplace.Tx) error { return nil })
	require.ErrorIs(t, err, marketplace.ErrClosed)
}

// TestTwoStoresShareFile opens the file twice, as two processes would: the
// busy timeout makes each wait for the other's write lock, so Lock still
// serialises read-modify-write cycles and no caller sees SQLITE_BUSY.
func TestTwoStoresShareFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "store.db")
	stores := []*sqlitestore.Store{openAt(t, path), openAt(t, path)}
	ctx := context.Background()
	require.NoError(t, stores[0].InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		return tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "counter", Plan: "0"})
	}))
	const perStore = 4 * 10
	errs := make(chan error, 2*perStore)
	var wg sync.WaitGroup
	for _, s := range stores {
		for range 4 {
			wg.Go(func() {
				for range perStore / 4 {
					errs <- s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
						if err := tx.Lock(ctx, "counter"); err != nil {
							return err
						}
						e, err := tx.GetEntitlement(ctx, "counter")
						if err != nil {
							return err
						}
						n, err := strconv.Atoi(e.Plan)
						if err != nil {
							return err
						}
						e.Plan = strconv.Itoa(n + 1)
						return tx.PutEntitlement(ctx, e)
					})
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, stores[1].InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		e, err := tx.GetEntitlement(ctx, "counter")
		assert.Equal(t, strconv.Itoa(2*perStore), e.Plan)
		return err
	}))
}
