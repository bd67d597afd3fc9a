package agent_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/agent"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
)

// replica is another process of the backend: its own Registry and DCR
// endpoint over store, sharing the emulator and the identity provider.
func (e *env) replica(store agent.Store) *httptest.Server {
	e.t.Helper()
	cfg := e.cfg
	cfg.Store = store
	reg, err := agent.New(cfg)
	require.NoError(e.t, err)
	srv := httptest.NewServer(reg.DCRHandler())
	e.t.Cleanup(srv.Close)
	return srv
}

// pgReplicaStores returns n pgstore stores over one fresh schema, each
// with a pool of its own, as n replicas would have.
func pgReplicaStores(t *testing.T, n int) []*pgstore.Store {
	url := testenv.PostgresURL(t)
	schema := "agent_test_" + testenv.RandomSuffix(t)
	// Registered first, so it runs after the stores and pools are closed.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pool, err := pgxpool.New(ctx, testenv.WithPoolSize(url, 1))
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer pool.Close()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	var stores []*pgstore.Store
	for range n {
		pool, err := pgxpool.New(context.Background(), testenv.WithPoolSize(url, 2))
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		s, err := pgstore.New(context.Background(), pool, pgstore.WithSchema(schema),
			pgstore.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	return stores
}

// Three replicas on one PostgreSQL database register one order at once:
// one client survives and every answer carries it.
func TestDCRConcurrentReplicasOnPostgres(t *testing.T) {
	t.Parallel()
	stores := pgReplicaStores(t, 3)
	e := newEnv(t)
	acct, order := e.buy(true)
	var urls []string
	for _, s := range stores {
		urls = append(urls, e.replica(s).URL)
	}
	hold := make(chan struct{})
	e.idp.set(func(p *testIdP) { p.hold = hold })
	const perReplica = 2
	n := len(urls) * perReplica
	replies := make([]dcrReply, n)
	stmts := make([]string, n)
	for i := range stmts {
		stmts[i] = e.statement(acct, order)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPost, urls[i%len(urls)], strings.NewReader(stmtBody(stmts[i])))
			if err != nil {
				t.Errorf("request: %v", err)
				return
			}
			replies[i] = send(t, req)
		})
	}
	e.releaseTogether(t, &wg, hold, replies)
	rec, err := stores[1].GetOrderByClient(context.Background(), replies[0].str("client_id"))
	require.NoError(t, err)
	assert.Equal(t, order, rec.ID)
}
