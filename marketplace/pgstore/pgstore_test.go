package pgstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/storetest"
)

var _ marketplace.Store = (*pgstore.Store)(nil)

func TestContract(t *testing.T) {
	storetest.Run(t, harness(t))
}

// harness makes each store in a fresh schema of the shared pool, and
// reopens it on the same schema (TestContract, TestOrdersContract).
func harness(t *testing.T) storetest.Harness {
	pool := sharedPool(t)
	return storetest.Harness{
		New: func(t *testing.T) marketplace.Store {
			s, err := pgstore.New(context.Background(), pool, pgstore.WithSchema(freshSchema(t)))
			require.NoError(t, err)
			return s
		},
		Reopen: func(t *testing.T, s marketplace.Store) marketplace.Store {
			schema := s.(*pgstore.Store).Schema()
			require.NoError(t, s.Close())
			r, err := pgstore.New(context.Background(), pool, pgstore.WithSchema(schema))
			require.NoError(t, err)
			return r
		},
	}
}
