package marketplace_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
)

// pooledStore is a store shared between processes whose connections come
// from a pool of maxConns.
type pooledStore struct {
	marketplace.Store
	maxConns int
}

func (s pooledStore) MaxConns() int { return s.maxConns }

func (pooledStore) LockKey(context.Context, string) (func(), error) { return func() {}, nil }

func TestNewChecksPoolSize(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	h := marketplace.HandlerDefaults{}
	_, err := marketplace.New(pooledStore{memstore.New(), 33}, env.client, h, nil)
	require.ErrorIs(t, err, marketplace.ErrInvalid)
	require.ErrorContains(t, err, "holds 33 connections, too few for concurrency 16")
	require.ErrorContains(t, err, "to at least 34, or lower Config.Concurrency to at most 15")
	_, err = marketplace.New(pooledStore{memstore.New(), 34}, env.client, h, nil)
	require.NoError(t, err)

	// Too small for any concurrency: only the pool can change.
	_, err = marketplace.New(pooledStore{memstore.New(), 3}, env.client, h, &marketplace.Config{Concurrency: 1})
	require.ErrorIs(t, err, marketplace.ErrInvalid)
	require.ErrorContains(t, err, "to at least 4: ")
	require.NotContains(t, err.Error(), "lower Config.Concurrency")

	// Without key locks a message holds one connection at a time: no
	// deadlock to guard against.
	type noLocks struct {
		marketplace.Store
		marketplace.ConnPool
	}
	_, err = marketplace.New(noLocks{memstore.New(), pooledStore{maxConns: 1}}, env.client, h, nil)
	require.NoError(t, err)
}
