package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"testing"
)

// PostgresEnv names the variable that holds the test database's connection
// string, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const PostgresEnv = "GCPMARKETPLACE_TEST_POSTGRES_URL"

// PostgresURL returns the test database's connection string (PostgresEnv),
// or skips the test when it is not set.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(PostgresEnv)
	if u == "" {
		tb.Skip(PostgresEnv + " not set: skipping the PostgreSQL tests (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	return u
}

// WithPoolSize sets pool_max_conns in a URL or keyword/value connection
// string.
func WithPoolSize(conn string, n int) string {
	u, err := url.Parse(conn)
	if err != nil || u.Scheme == "" {
		return conn + " pool_max_conns=" + strconv.Itoa(n)
	}
	q := u.Query()
	q.Set("pool_max_conns", strconv.Itoa(n))
	u.RawQuery = q.Encode()
	return u.String()
}

// RandomSuffix returns twelve random hex digits, for the names of what one
// test creates (schemas, application names).
func RandomSuffix(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("testenv: random suffix: %v", err)
	}
	return hex.EncodeToString(b)
}
