package pgstore_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// A pool too small for the processor's key locks and transactions would
// stall it for good under load: marketplace.New refuses it and says what
// to change.
func TestProcessorRefusesTooSmallPool(t *testing.T) {
	t.Parallel()
	schema := freshSchema(t)
	srv := marketplacetest.New(t)
	client, err := procurement.NewClient(context.Background(), srv.ProviderID(), srv.ClientOptions()...)
	require.NoError(t, err)
	h := marketplace.HandlerDefaults{}

	small := newStore(t, replicaPool(t, "pgstore-test-pool-small", 10), schema)
	require.Equal(t, 10, small.MaxConns())
	_, err = marketplace.New(small, client, h, nil) // concurrency 16 by default
	require.ErrorIs(t, err, marketplace.ErrInvalid)
	for _, s := range []string{"holds 10 connections", "concurrency 16", "pool_max_conns", "MaxConns", "at least 34", "Config.Concurrency to at most 4"} {
		require.ErrorContains(t, err, s)
	}
	_, err = marketplace.New(small, client, h, &marketplace.Config{Concurrency: 5})
	require.ErrorContains(t, err, "at least 12")
	_, err = marketplace.New(small, client, h, &marketplace.Config{Concurrency: 4})
	require.NoError(t, err)

	adequate := newStore(t, replicaPool(t, "pgstore-test-pool-adequate", 34), schema)
	_, err = marketplace.New(adequate, client, h, nil)
	require.NoError(t, err)
}

// Open sizes its pool for the processor's default concurrency unless the
// connection string says otherwise.
func TestOpenPoolSize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := freshSchema(t)
	srv := marketplacetest.New(t)
	client, err := procurement.NewClient(ctx, srv.ProviderID(), srv.ClientOptions()...)
	require.NoError(t, err)

	s, err := pgstore.Open(ctx, testURL(t), pgstore.WithSchema(schema))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.Equal(t, pgstore.DefaultMaxConns, s.MaxConns())
	_, err = marketplace.New(s, client, marketplace.HandlerDefaults{}, nil) // concurrency 16 by default
	require.NoError(t, err)

	set, err := pgstore.Open(ctx, withParams(t, testURL(t), map[string]string{"pool_max_conns": "7"}), pgstore.WithSchema(schema))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, set.Close()) })
	require.Equal(t, 7, set.MaxConns())
}
