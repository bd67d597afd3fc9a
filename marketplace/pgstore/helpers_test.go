package pgstore_test

import (
	"context"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
)

// envURL names the database the tests use, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. Every test works
// in a schema of its own, dropped when it ends.
const envURL = "GCPMARKETPLACE_TEST_POSTGRES_URL"

func testURL(tb testing.TB) string {
	tb.Helper()
	return testenv.PostgresURL(tb)
}

var shared struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.pool != nil {
		shared.pool.Close()
	}
	os.Exit(code)
}

// sharedPool is the pool most tests use, each with its own schema.
func sharedPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	u := testURL(tb)
	shared.once.Do(func() {
		shared.pool, shared.err = pgxpool.New(context.Background(), withParams(tb, u, map[string]string{
			"pool_max_conns":   "12",
			"application_name": "pgstore-test-shared",
		}))
	})
	require.NoError(tb, shared.err)
	return shared.pool
}

// withParams adds query parameters to a URL connection string.
func withParams(tb testing.TB, connString string, params map[string]string) string {
	tb.Helper()
	u, err := url.Parse(connString)
	require.NoError(tb, err, "%s must be a URL", envURL)
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// freshSchema returns an unused schema name, dropped with everything in it
// when tb ends (after the stores of tb are closed: cleanups run last first).
func freshSchema(tb testing.TB) string {
	tb.Helper()
	p := sharedPool(tb)
	name := "pgstore_test_" + testenv.RandomSuffix(tb)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := p.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// replicaPool is a pool of its own, as another replica of the backend would
// have; its connections carry application name appName.
// Further connection parameters may be given as key, value pairs.
func replicaPool(tb testing.TB, appName string, maxConns int, params ...string) *pgxpool.Pool {
	tb.Helper()
	m := map[string]string{
		"pool_max_conns":   itoa(maxConns),
		"application_name": appName,
	}
	for i := 0; i+1 < len(params); i += 2 {
		m[params[i]] = params[i+1]
	}
	p, err := pgxpool.New(context.Background(), withParams(tb, testURL(tb), m))
	require.NoError(tb, err)
	tb.Cleanup(p.Close)
	return p
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}

// newStore opens a store on pool and schema, closed when tb ends.
func newStore(tb testing.TB, pool *pgxpool.Pool, schema string) *pgstore.Store {
	tb.Helper()
	s, err := pgstore.New(context.Background(), pool, pgstore.WithSchema(schema))
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	return s
}

// base is a fixed instant at microsecond precision.
var base = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)
