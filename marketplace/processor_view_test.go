package marketplace_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
)

// countingStore counts the transactions the processor opens.
type countingStore struct {
	*memstore.Store
	views, txs atomic.Int32
}

func (s *countingStore) InTx(ctx context.Context, fn func(context.Context, marketplace.Tx) error) error {
	s.txs.Add(1)
	return s.Store.InTx(ctx, fn)
}

func (s *countingStore) View(ctx context.Context, fn func(context.Context, marketplace.Tx) error) error {
	s.views.Add(1)
	return s.Store.View(ctx, fn)
}

// A duplicate delivery is recognised in a read-only transaction and
// commits nothing.
func TestProcessorReadsInView(t *testing.T) {
	t.Parallel()
	store := &countingStore{Store: memstore.New()}
	env := newProcEnv(t, withStore(store))
	_, ent := env.purchase(marketplacetest.PurchaseParams{})
	msgs := env.newMessages()
	require.NotEmpty(t, msgs)
	for _, m := range msgs {
		require.NoError(t, env.proc.HandleMessage(env.ctx, m))
	}
	env.drain()
	_, ok := env.localEntitlement(ent)
	require.True(t, ok, "entitlement stored")

	views, txs := store.views.Load(), store.txs.Load()
	require.NoError(t, env.proc.HandleMessage(env.ctx, msgs[0]))
	require.Equal(t, views+1, store.views.Load(), "read-only transactions for a duplicate")
	require.Equal(t, txs, store.txs.Load(), "read-write transactions for a duplicate")
}

// hiddenViewer is a Store without the Viewer capability.
type hiddenViewer struct{ marketplace.Store }

// The lifecycle with duplicated and reordered deliveries, on sqlitestore
// (reads in View beside the group-commit writer) and on a store without
// Viewer (reads in InTx): callbacks fire exactly once per change and local
// state ends equal to the emulator's.
func TestLifecycleReadPaths(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		store func(t *testing.T) marketplace.Store
	}{
		{"sqlitestore", func(t *testing.T) marketplace.Store {
			s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"),
				sqlitestore.WithSynchronous(sqlitestore.SyncNormal))
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			return s
		}},
		{"without-viewer", func(*testing.T) marketplace.Store { return hiddenViewer{memstore.New()} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			store := c.store(t)
			_, isViewer := store.(marketplace.Viewer)
			require.Equal(t, c.name == "sqlitestore", isViewer)
			env := newProcEnv(t, withStore(store), withProc(marketplace.Config{Policy: lifecyclePolicy}))
			rng := rand.New(rand.NewPCG(3, 5))
			want := lifecycleScript(t, env, 24, func() { env.drainChaos(rng, 8) })
			require.Equal(t, want, env.rec.counts())
			env.requireInSync()
			require.Empty(t, env.poison())
		})
	}
}
