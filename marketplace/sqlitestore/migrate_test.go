package sqlitestore

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

func TestLoadMigrations(t *testing.T) {
	t.Parallel()
	ms, err := loadMigrations(migrationFiles)
	require.NoError(t, err)
	require.Equal(t, len(migrations), len(ms))
	assert.Equal(t, 1, ms[0].Version)
	assert.Equal(t, "0001_initial.sql", ms[0].Name)

	for name, fsys := range map[string]fstest.MapFS{
		"gap":       {"migrations/0001_a.sql": {}, "migrations/0003_c.sql": {}},
		"no number": {"migrations/initial.sql": {}},
		"from zero": {"migrations/0000_a.sql": {}},
		"empty":     {},
	} {
		_, err := loadMigrations(fsys)
		assert.Error(t, err, name)
	}
	ms, err = loadMigrations(fstest.MapFS{
		"migrations/0002_b.sql": {Data: []byte("B")},
		"migrations/0001_a.sql": {Data: []byte("A")},
	})
	require.NoError(t, err)
	assert.Equal(t, []migration{{Version: 1, Name: "0001_a.sql", SQL: "A"}, {Version: 2, Name: "0002_b.sql", SQL: "B"}}, ms)
}

// TestMigrateUpgrade adds a migration, as the usage ledger will, and opens a
// database written at the previous version. Not parallel: it swaps the
// package's migration list.
func TestMigrateUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	ctx := context.Background()
	s, err := Open(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		return tx.PutAccount(ctx, marketplace.Account{ID: "acct-1", VendorUserID: "tenant-1"})
	}))
	require.NoError(t, s.Close())

	saved := migrations
	t.Cleanup(func() { migrations = saved })
	migrations = append(saved[:len(saved):len(saved)], migration{
		Version: len(saved) + 1,
		Name:    "0002_usage_ledger.sql",
		SQL:     "CREATE TABLE usage_ledger (id TEXT NOT NULL PRIMARY KEY, quantity INTEGER NOT NULL) STRICT;",
	})

	s, err = Open(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, mtx marketplace.Tx) error {
		a, err := mtx.GetAccount(ctx, "acct-1")
		require.NoError(t, err)
		assert.Equal(t, "tenant-1", a.VendorUserID, "data kept across the upgrade")
		return mtx.(*tx).exec("INSERT INTO usage_ledger VALUES ('u1', 3)")
	}))
	require.NoError(t, s.Close())

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	var version int
	require.NoError(t, db.QueryRow("PRAGMA user_version").Scan(&version))
	assert.Equal(t, len(saved)+1, version)

	// The older build now refuses the file.
	migrations = saved
	_, err = Open(ctx, path)
	require.ErrorIs(t, err, ErrSchemaTooNew)
}

// TestMigrateFailureLeavesVersion checks that a failing migration is rolled
// back with the version bump. Not parallel: it swaps the migration list.
func TestMigrateFailureLeavesVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	ctx := context.Background()
	s, err := Open(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	saved := migrations
	t.Cleanup(func() { migrations = saved })
	migrations = append(saved[:len(saved):len(saved)],
		migration{Version: len(saved) + 1, Name: "0002_ok.sql", SQL: "CREATE TABLE extra (x INTEGER) STRICT;"},
		migration{Version: len(saved) + 2, Name: "0003_bad.sql", SQL: "CREATE TABLE broken ("},
	)
	_, err = Open(ctx, path)
	require.ErrorContains(t, err, "migration 0003_bad.sql")

	migrations = saved
	s, err = Open(ctx, path)
	require.NoError(t, err, "the old version still opens: nothing of the failed upgrade was kept")
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, mtx marketplace.Tx) error {
		var n int
		err := mtx.(*tx).s.conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE name = 'extra'").Scan(&n)
		assert.Equal(t, 0, n)
		return err
	}))
	require.NoError(t, s.Close())
}

// TestMigrateAddsOffer opens a database written at version 2, before
// entitlements kept their offer: its rows read as no offer, and new ones
// keep theirs. Not parallel: it swaps the package's migration list.
func TestMigrateAddsOffer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	ctx := context.Background()
	saved := migrations
	migrations = saved[:2]
	// The statements of this version need the offer column, so Open fails
	// once the schema is at version 2: that is the file to upgrade.
	if s, err := Open(ctx, path); err == nil {
		_ = s.Close()
	}
	migrations = saved
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	var version int
	require.NoError(t, db.QueryRow("PRAGMA user_version").Scan(&version))
	require.Equal(t, 2, version)
	_, err = db.Exec(`INSERT INTO entitlements (id, account_id, product, plan, pending_plan, state, usage_reporting_id, update_time, parked, parked_at, cancel_time)
		VALUES ('ent-old', 'acct-1', 'svc', 'basic', '', 'ENTITLEMENT_ACTIVE', 'project_number:1', ?, 0, ?, ?)`,
		"2026-01-05T09:00:00.000000000Z", "0001-01-01T00:00:00.000000000Z", "0001-01-01T00:00:00.000000000Z")
	require.NoError(t, err)
	require.NoError(t, db.Close())

	s, err := Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		old, err := tx.GetEntitlement(ctx, "ent-old")
		require.NoError(t, err)
		assert.Equal(t, "basic", old.Plan)
		assert.Empty(t, old.Offer)
		old.Offer = "projects/1/services/svc/privateOffers/o"
		return tx.PutEntitlement(ctx, old)
	}))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		got, err := tx.GetEntitlement(ctx, "ent-old")
		require.NoError(t, err)
		assert.Equal(t, "projects/1/services/svc/privateOffers/o", got.Offer)
		return nil
	}))
}

// TestMigrateAddsLeaseToken opens a database written before windows had a
// lease token, with an open window: the window reads as token 0, a claim
// increments it, and only an update under the new token applies. Not
// parallel: it swaps the package's migration list.
func TestMigrateAddsLeaseToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	ctx := context.Background()
	saved := migrations
	n := slices.IndexFunc(saved, func(m migration) bool { return strings.HasSuffix(m.Name, "_lease_token.sql") })
	require.Positive(t, n)
	migrations = saved[:n]
	if s, err := Open(ctx, path); err == nil {
		_ = s.Close()
	}
	migrations = saved
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	var version int
	require.NoError(t, db.QueryRow("PRAGMA user_version").Scan(&version))
	require.Equal(t, n, version)
	const zero = "0001-01-01T00:00:00.000000000Z"
	_, err = db.Exec(`INSERT INTO usage_windows (operation_id, entitlement_id, consumer_id, start_time, end_time, labels, metric_values,
		state, reason, deadline, attempts, sealed_at, last_attempt, reported_at, lease_owner, lease_until)
		VALUES ('op-old', 'ent-1', 'project_number:1', '2026-01-05T09:00:00.000000000Z', '2026-01-05T10:00:00.000000000Z', '{}', '[]',
		'pending', '', '2026-01-05T11:00:00.000000000Z', 0, '2026-01-05T10:01:00.000000000Z', ?, ?, '', ?)`, zero, zero, zero)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	s, err := Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	now := time.Date(2026, 1, 5, 10, 2, 0, 0, time.UTC)
	ws, err := s.ClaimWindows(ctx, ledger.ClaimParams{Owner: "a", Now: now, LeaseUntil: now.Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, ws, 1)
	assert.Equal(t, int64(1), ws[0].LeaseToken)
	lost, err := s.UpdateWindows(ctx, "a", []ledger.WindowUpdate{{OperationID: "op-old", State: ledger.StateUnknown, LeaseToken: 0}})
	require.NoError(t, err)
	assert.Equal(t, []string{"op-old"}, lost, "an update without the claim's token")
	lost, err = s.UpdateWindows(ctx, "a", []ledger.WindowUpdate{{OperationID: "op-old", State: ledger.StateUnknown, LeaseToken: 1}})
	require.NoError(t, err)
	assert.Empty(t, lost)
}
