package sqlitestore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
)

// TestReaderConnectionsAreQueryOnly: the read pool refuses writes in SQLite
// itself, not only in the Tx methods.
func TestReaderConnectionsAreQueryOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "store.db"))
	require.NoError(t, err)
	defer s.Close()
	r, err := s.readers.acquire(ctx)
	require.NoError(t, err)
	defer s.readers.release(r, false)
	_, err = r.conn.ExecContext(ctx, "INSERT INTO accounts (id, signup_approved, vendor_user_id, user_identity, update_time, created_at) VALUES ('a', 0, '', '', '', '')")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "readonly")
	var n int
	require.NoError(t, r.conn.QueryRowContext(ctx, "SELECT count(*) FROM accounts").Scan(&n))
	assert.Zero(t, n)
}

// TestBrokenReaderIsReplaced: a connection released as broken is closed and
// a new one opened in its slot when next needed.
func TestBrokenReaderIsReplaced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "store.db"))
	require.NoError(t, err)
	defer s.Close()
	var held []*reader
	for range readerConns {
		r, err := s.readers.acquire(ctx)
		require.NoError(t, err)
		held = append(held, r)
	}
	for _, r := range held {
		s.readers.release(r, true)
	}
	for range 2 * readerConns {
		require.NoError(t, s.View(ctx, func(ctx context.Context, tx marketplace.Tx) error {
			_, err := tx.ListAccounts(ctx)
			return err
		}))
	}
}
