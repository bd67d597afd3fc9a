package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

func TestInterpretError(t *testing.T) {
	t.Parallel()
	pgErr := func(code string) error { return &pgconn.PgError{Severity: "ERROR", Code: code, Message: "m"} }
	errOther := errors.New("something else")
	cases := []struct {
		name      string
		err       error
		want      error // errors.Is target, nil: passes through unchanged
		retryable bool
	}{
		{"no rows", pgx.ErrNoRows, marketplace.ErrNotFound, false},
		{"wrapped no rows", fmt.Errorf("scan: %w", pgx.ErrNoRows), marketplace.ErrNotFound, false},
		{"closed pool", puddle.ErrClosedPool, marketplace.ErrClosed, false},
		{"serialization failure", pgErr("40001"), ErrConflict, true},
		{"deadlock", pgErr("40P01"), ErrConflict, true},
		{"terminated backend", pgErr("57P01"), ErrUnavailable, true},
		{"crash shutdown", pgErr("57P02"), ErrUnavailable, true},
		{"starting up", pgErr("57P03"), ErrUnavailable, true},
		{"connection failure", pgErr("08006"), ErrUnavailable, true},
		{"too many connections", pgErr("53300"), ErrUnavailable, true},
		{"unique violation", pgErr("23505"), nil, false},
		{"connect error", &pgconn.ConnectError{}, ErrUnavailable, true},
		{"network error", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, ErrUnavailable, true},
		{"unexpected EOF", fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), ErrUnavailable, true},
		{"conn closed", fmt.Errorf("begin: %w", pgconn.ErrConnClosed), ErrUnavailable, true},
		{"cancelled", fmt.Errorf("query: %w", context.Canceled), context.Canceled, false},
		{"deadline", context.DeadlineExceeded, context.DeadlineExceeded, false},
		{"other", errOther, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := interpretError(c.err)
			if c.want == nil {
				assert.Same(t, c.err, got, "passes through")
			} else {
				assert.ErrorIs(t, got, c.want)
			}
			assert.Equal(t, c.retryable, IsRetryable(got), "IsRetryable")
			// The original stays reachable for errors.As.
			if !errors.Is(c.err, pgx.ErrNoRows) {
				assert.ErrorIs(t, got, c.err)
			}
		})
	}
	assert.NoError(t, interpretError(nil))
}

func TestIsRetryableOfCallerErrors(t *testing.T) {
	t.Parallel()
	for _, err := range []error{nil, marketplace.ErrInvalid, marketplace.ErrNotFound, marketplace.ErrClosed, marketplace.ErrTxDone, ErrSchemaTooNew, context.Canceled} {
		assert.False(t, IsRetryable(err), "%v", err)
	}
	assert.True(t, IsRetryable(fmt.Errorf("pgstore: commit: %w", ErrUnavailable)))
}

func TestValidateSchema(t *testing.T) {
	t.Parallel()
	good := []string{"gcpmarketplace", "a", "_x", "tenant_42", strings.Repeat("s", 63)}
	bad := []string{"", "Gcp", "1abc", "a-b", "a b", `a"b`, "a.b", "pg_catalog", "pg_x", "é", strings.Repeat("s", 64), "x;drop"}
	for _, name := range good {
		assert.NoError(t, validateSchema(name), name)
	}
	for _, name := range bad {
		assert.ErrorIs(t, validateSchema(name), marketplace.ErrInvalid, name)
	}
}

// FuzzValidateSchema checks that every accepted name is an identifier
// PostgreSQL keeps as is: quoting it only adds the quotes.
func FuzzValidateSchema(f *testing.F) {
	for _, s := range []string{"gcpmarketplace", "", "A", "a\"b", "pg_x", "_", "a\x00", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if validateSchema(name) != nil {
			return
		}
		if len(name) == 0 || len(name) > 63 || strings.HasPrefix(name, "pg_") {
			t.Fatalf("accepted %q", name)
		}
		if got := (pgx.Identifier{name}).Sanitize(); got != `"`+name+`"` {
			t.Fatalf("accepted %q, which quotes as %s", name, got)
		}
		if strings.ToLower(name) != name {
			t.Fatalf("accepted %q, which is not lower case", name)
		}
	})
}

func TestLockIDNamespaces(t *testing.T) {
	t.Parallel()
	a := &Store{schema: "a"}
	b := &Store{schema: "b"}
	assert.Equal(t, a.lockID(nsTx, "ent-1"), a.lockID(nsTx, "ent-1"), "stable")
	ab, a2 := &Store{schema: "ab"}, &Store{schema: "a"}
	ids := map[int64]string{}
	for _, c := range []struct {
		s     *Store
		ns, k string
		descr string
	}{
		{a, nsTx, "ent-1", "a tx ent-1"},
		{a, nsKey, "ent-1", "a key ent-1"},
		{b, nsTx, "ent-1", "b tx ent-1"},
		{a, nsTx, "ent-2", "a tx ent-2"},
		{a, nsMigrate, "", "a migrate"},
		{a, nsTx, "", "a tx empty"},
		// The separator keeps parts from running into each other.
		{ab, nsTx, "c", "ab tx c"},
		{a2, nsTx, "bc", "a tx bc"},
	} {
		id := c.s.lockID(c.ns, c.k)
		if prev, ok := ids[id]; ok {
			t.Fatalf("%s and %s share lock id %d", prev, c.descr, id)
		}
		ids[id] = c.descr
	}
}

func TestCheckTextAndTime(t *testing.T) {
	t.Parallel()
	assert.NoError(t, checkText("", "ascii", "tenant-ü-42"))
	assert.ErrorIs(t, checkText("ok", "nul\x00byte"), marketplace.ErrInvalid)
	assert.ErrorIs(t, checkText("\xff\xfe"), marketplace.ErrInvalid)
	assert.Equal(t, "a\uFFFDb\uFFFD", cleanText("a\x00b\xff"))
	assert.NoError(t, checkTime(time.Time{}, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)))
	assert.ErrorIs(t, checkTime(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), marketplace.ErrInvalid)
	assert.ErrorIs(t, checkTime(time.Time{}.Add(-time.Hour)), marketplace.ErrInvalid)
}

func TestLoadMigrations(t *testing.T) {
	t.Parallel()
	ms, err := loadMigrations(migrationFiles)
	require.NoError(t, err)
	require.Equal(t, SchemaVersion(), len(ms))
	assert.Equal(t, "0001_initial.sql", ms[0].Name)

	_, err = loadMigrations(fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte("SELECT 1")},
		"migrations/0003_c.sql": {Data: []byte("SELECT 1")},
	})
	assert.ErrorContains(t, err, "want a name starting 0002_")
	_, err = loadMigrations(fstest.MapFS{})
	assert.Error(t, err)
}
