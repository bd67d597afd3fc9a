package pgstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
)

func queryInt(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

func tableCount(t *testing.T, pool *pgxpool.Pool, schema string) int {
	t.Helper()
	return queryInt(t, pool, "SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema)
}

// Replicas starting together on an empty database: one migrates, the others
// wait on the advisory lock and find the work done.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	pool := sharedPool(t)
	schema := freshSchema(t)
	const replicas = 4
	stores := make([]*pgstore.Store, replicas)
	errs := make([]error, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range replicas {
		p := replicaPool(t, "pgstore-test-migrate", 2)
		wg.Go(func() {
			<-start
			stores[i], errs[i] = pgstore.New(context.Background(), p, pgstore.WithSchema(schema))
		})
	}
	close(start)
	wg.Wait()
	for i := range replicas {
		require.NoError(t, errs[i], "replica %d", i)
		require.NoError(t, stores[i].Close())
	}
	q := pgx.Identifier{schema, "schema_migrations"}.Sanitize()
	assert.Equal(t, pgstore.SchemaVersion(), queryInt(t, pool, "SELECT count(*) FROM "+q), "migration rows")
	assert.Equal(t, pgstore.SchemaVersion(), queryInt(t, pool, "SELECT max(version) FROM "+q), "version")
}

func TestSchemaTooNewIsRefusedUntouched(t *testing.T) {
	t.Parallel()
	pool := sharedPool(t)
	schema := freshSchema(t)
	s, err := pgstore.New(context.Background(), pool, pgstore.WithSchema(schema))
	require.NoError(t, err)
	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		return tx.PutAccount(ctx, marketplace.Account{ID: "acct-1", VendorUserID: "tenant-1"})
	}))
	require.NoError(t, s.Close())

	// A newer build migrated the schema further.
	q := pgx.Identifier{schema, "schema_migrations"}.Sanitize()
	_, err = pool.Exec(context.Background(), "INSERT INTO "+q+" (version, name) VALUES ($1, 'from_the_future.sql')", pgstore.SchemaVersion()+1)
	require.NoError(t, err)
	tables := tableCount(t, pool, schema)

	_, err = pgstore.New(context.Background(), pool, pgstore.WithSchema(schema))
	require.ErrorIs(t, err, pgstore.ErrSchemaTooNew)
	assert.ErrorContains(t, err, schema)
	assert.False(t, pgstore.IsRetryable(err))

	assert.Equal(t, tables, tableCount(t, pool, schema), "tables")
	assert.Equal(t, pgstore.SchemaVersion()+1, queryInt(t, pool, "SELECT max(version) FROM "+q), "version")
	assert.Equal(t, 1, queryInt(t, pool, "SELECT count(*) FROM "+pgx.Identifier{schema, "accounts"}.Sanitize()+" WHERE vendor_user_id = 'tenant-1'"), "data")
}

// A schema created beforehand (by a DBA) holding only a newer version
// record: refused before anything is created in it.
func TestSchemaTooNewBeforeAnyTable(t *testing.T) {
	t.Parallel()
	pool := sharedPool(t)
	schema := freshSchema(t)
	_, err := pool.Exec(context.Background(), "CREATE SCHEMA "+schema+"; CREATE TABLE "+schema+".schema_migrations (version integer PRIMARY KEY, name text NOT NULL); INSERT INTO "+schema+".schema_migrations VALUES (99, 'x')")
	require.NoError(t, err)
	_, err = pgstore.New(context.Background(), pool, pgstore.WithSchema(schema))
	require.ErrorIs(t, err, pgstore.ErrSchemaTooNew)
	assert.Equal(t, 1, tableCount(t, pool, schema), "tables in the schema")
}

func TestExistingSchemaIsUsed(t *testing.T) {
	t.Parallel()
	pool := sharedPool(t)
	schema := freshSchema(t)
	_, err := pool.Exec(context.Background(), "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	s := newStore(t, pool, schema)
	assert.Equal(t, schema, s.Schema())
	assert.Positive(t, tableCount(t, pool, schema))
}

// A failing migration leaves nothing behind: the schema and its tables are
// created in the same transaction.
func TestFailedMigrationRollsBack(t *testing.T) {
	t.Parallel()
	pool := sharedPool(t)
	schema := freshSchema(t)
	// Someone else's table with a name the migration needs.
	_, err := pool.Exec(context.Background(), "CREATE SCHEMA "+schema+"; CREATE TABLE "+schema+".accounts (x int)")
	require.NoError(t, err)
	_, err = pgstore.New(context.Background(), pool, pgstore.WithSchema(schema))
	require.Error(t, err)
	assert.ErrorContains(t, err, "0001_initial.sql")
	assert.Equal(t, 1, tableCount(t, pool, schema), "tables in the schema")
}

func TestTwoSchemasAreIndependent(t *testing.T) {
	t.Parallel()
	pool := sharedPool(t)
	a := newStore(t, pool, freshSchema(t))
	b := newStore(t, pool, freshSchema(t))
	ctx := context.Background()
	require.NoError(t, a.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		_, err := tx.MarkProcessed(ctx, "ev-1", base)
		return err
	}))
	require.NoError(t, b.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
		first, err := tx.MarkProcessed(ctx, "ev-1", base)
		assert.True(t, first, "ev-1 is new in the other schema")
		return err
	}))
	// Locks are per schema too: holding a key in a does not block b.
	unlock, err := a.LockKey(ctx, "ent-1")
	require.NoError(t, err)
	defer unlock()
	unlockB, err := lockWithin(t, b, "ent-1", 5*time.Second)
	require.NoError(t, err)
	unlockB()
}

func TestInvalidOptionsFailBeforeConnecting(t *testing.T) {
	t.Parallel()
	// A pool that would fail to connect: validation happens first.
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	require.NoError(t, err)
	defer pool.Close()
	for _, name := range []string{"", "Upper", "has-dash", "pg_toast", `x"; DROP TABLE y; --`} {
		_, err := pgstore.New(context.Background(), pool, pgstore.WithSchema(name))
		assert.ErrorIs(t, err, marketplace.ErrInvalid, "schema %q", name)
	}
	_, err = pgstore.New(context.Background(), nil)
	assert.ErrorIs(t, err, marketplace.ErrInvalid, "nil pool")
	_, err = pgstore.Open(context.Background(), "postgres://h/db?pool_max_conns=not-a-number")
	assert.ErrorIs(t, err, marketplace.ErrInvalid, "bad connection string")
}

func TestOpenUnreachableIsRetryable(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1.
	_, err := pgstore.Open(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=2&sslmode=disable")
	require.Error(t, err)
	assert.ErrorIs(t, err, pgstore.ErrUnavailable)
	assert.True(t, pgstore.IsRetryable(err))
}

func TestOpenOwnsItsPool(t *testing.T) {
	t.Parallel()
	schema := freshSchema(t)
	s, err := pgstore.Open(context.Background(), testURL(t), pgstore.WithSchema(schema))
	require.NoError(t, err)
	require.NoError(t, s.InTx(context.Background(), func(ctx context.Context, tx marketplace.Tx) error {
		return tx.PutAccount(ctx, marketplace.Account{ID: "acct-1"})
	}))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	err = s.InTx(context.Background(), func(context.Context, marketplace.Tx) error { return nil })
	require.ErrorIs(t, err, marketplace.ErrClosed)

	// New leaves the caller's pool open.
	pool := sharedPool(t)
	s2, err := pgstore.New(context.Background(), pool, pgstore.WithSchema(schema))
	require.NoError(t, err)
	require.NoError(t, s2.Close())
	require.NoError(t, pool.Ping(context.Background()))
}

// A schema at version 2, from before entitlements kept their offer, is
// upgraded by New: its rows read as no offer, and new writes keep theirs.
func TestMigrationAddsOffer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := sharedPool(t)
	schema := freshSchema(t)
	s := newStore(t, pool, schema)
	require.GreaterOrEqual(t, pgstore.SchemaVersion(), 3)
	q := pgx.Identifier{schema}.Sanitize()
	// Back to version 2, as an older release left it, with one row. What
	// later versions added goes too, so that they are applied again.
	_, err := pool.Exec(ctx, "ALTER TABLE "+q+".entitlements DROP COLUMN offer; DROP TABLE "+q+".used_signup_tokens;"+
		" ALTER TABLE "+q+".usage_windows DROP COLUMN lease_token; DROP TABLE "+q+".marketplace_origin;"+
		" DROP TABLE "+q+".entitlement_transitions; DROP TABLE "+q+".agent_orders;"+
		" DELETE FROM "+q+".schema_migrations WHERE version >= 3")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "INSERT INTO "+q+`.entitlements (id, account_id, product, plan, pending_plan, state, usage_reporting_id,
		update_time, parked, parked_at, cancel_time) VALUES ('ent-old', 'acct-1', 'svc', 'basic', '', 'ENTITLEMENT_ACTIVE', 'project_number:1',
		now(), false, '0001-01-01 00:00:00+00', '0001-01-01 00:00:00+00')`)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = newStore(t, pool, schema)
	assert.Equal(t, pgstore.SchemaVersion(), queryInt(t, pool, "SELECT max(version) FROM "+q+".schema_migrations"))
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
