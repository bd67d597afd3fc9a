package sqlitestore_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/storetest"
)

var _ marketplace.Store = (*sqlitestore.Store)(nil)

func openAt(t *testing.T, path string, opts ...sqlitestore.Option) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// harness runs the contract over files in per-test temporary directories.
func harness(opts ...sqlitestore.Option) storetest.Harness {
	var paths sync.Map // *sqlitestore.Store → path
	return storetest.Harness{
		New: func(t *testing.T) marketplace.Store {
			path := filepath.Join(t.TempDir(), "store.db")
			s := openAt(t, path, opts...)
			paths.Store(s, path)
			return s
		},
		Reopen: func(t *testing.T, s marketplace.Store) marketplace.Store {
			path, ok := paths.Load(s)
			require.True(t, ok, "store not opened by this harness")
			require.NoError(t, s.Close())
			r := openAt(t, path.(string), opts...)
			paths.Store(r, path)
			return r
		},
	}
}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, harness())
}

// TestContractNoGroupCommit runs the contract with one transaction per
// commit, the path a lone caller takes.
func TestContractNoGroupCommit(t *testing.T) {
	t.Parallel()
	storetest.Run(t, harness(sqlitestore.WithMaxBatch(1), sqlitestore.WithSynchronous(sqlitestore.SyncNormal)))
}
