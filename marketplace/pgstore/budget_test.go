package pgstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
)

// A pool larger than the connections the server has left is refused when
// the store opens, with the numbers and the fix, instead of failing later
// under load with "too many clients" (issue 19, item 10).
func TestPoolBeyondServerConnectionsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := freshSchema(t)

	// Another client holding connections counts against the budget.
	holder := replicaPool(t, "pgstore-test-budget-holder", 3)
	for range 3 {
		c, err := holder.Acquire(ctx)
		require.NoError(t, err)
		t.Cleanup(c.Release)
	}

	_, err := pgstore.Open(ctx, withParams(t, testURL(t), map[string]string{"pool_max_conns": "1000"}), pgstore.WithSchema(schema))
	require.ErrorIs(t, err, pgstore.ErrConnectionBudget)
	var be *pgstore.ConnectionBudgetError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, 1000, be.Pool)
	assert.Positive(t, be.MaxConnections)
	assert.GreaterOrEqual(t, be.Reserved, 0)
	assert.GreaterOrEqual(t, be.InUse, 3, "the holder's connections")
	assert.Less(t, be.Available(), 1000)
	for _, s := range []string{"may open 1000 connections", "max_connections", "pool_max_conns", "Config.Concurrency"} {
		assert.ErrorContains(t, err, s)
	}

	// New checks the pool it is given the same way.
	_, err = pgstore.New(ctx, replicaPool(t, "pgstore-test-budget-new", 1000), pgstore.WithSchema(schema))
	require.ErrorIs(t, err, pgstore.ErrConnectionBudget)

	// A pool that fits opens.
	s, err := pgstore.Open(ctx, withParams(t, testURL(t), map[string]string{"pool_max_conns": "2"}), pgstore.WithSchema(schema))
	require.NoError(t, err)
	require.NoError(t, s.Close())
}
