package pgstore_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
)

// BenchmarkTx measures the event transaction: mark an event processed and
// upsert its entitlement, committed together (the same transaction as
// sqlitestore's BenchmarkTx). The baseline-* cases run the same two
// statements through plain pgx on the same kind of pool, BEGIN to COMMIT,
// which is the floor the store is measured against.
func BenchmarkTx(b *testing.B) {
	for _, c := range []struct {
		name    string
		workers int
		store   bool
	}{
		{"pgstore-serial", 1, true},
		{"baseline-pgx-serial", 1, false},
		{"pgstore-parallel8", 8, true},
		{"baseline-pgx-parallel8", 8, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			pool := replicaPool(b, "pgstore-bench", 8)
			s := newStore(b, pool, freshSchema(b))
			ctx := context.Background()
			now := time.Now()
			if c.store {
				runWorkers(b, c.workers, func(i int) error {
					id := strconv.Itoa(i)
					return s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
						first, err := tx.MarkProcessed(ctx, "ev-"+id, now)
						if err != nil || !first {
							return fmt.Errorf("mark %s: first=%v err=%v", id, first, err)
						}
						return tx.PutEntitlement(ctx, marketplace.Entitlement{ID: "ent-" + id, AccountID: "acct", Plan: "basic", State: "ENTITLEMENT_ACTIVE", UpdateTime: now})
					})
				})
				return
			}
			benchBaseline(b, pool, s, c.workers, now)
		})
	}
}

func benchBaseline(b *testing.B, pool *pgxpool.Pool, s *pgstore.Store, workers int, now time.Time) {
	schema := pgx.Identifier{s.Schema()}.Sanitize()
	markSQL := "INSERT INTO " + schema + ".processed_events (event_id, processed_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING"
	entSQL := "INSERT INTO " + schema + ".entitlements (id, account_id, product, plan, pending_plan, state, usage_reporting_id, update_time, parked, parked_at, cancel_time)" +
		" VALUES ($1, 'acct', '', 'basic', '', 'ENTITLEMENT_ACTIVE', '', $2, false, $3, $3)" +
		" ON CONFLICT (id) DO UPDATE SET plan = excluded.plan, update_time = excluded.update_time"
	ctx := context.Background()
	zero := time.Time{}
	runWorkers(b, workers, func(i int) error {
		id := strconv.Itoa(i)
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, markSQL, "ev-"+id, now); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, entSQL, "ent-"+id, now, zero)
			return err
		})
	})
}

// runWorkers runs op for i in [0, b.N) on n goroutines and reports tx/s.
func runWorkers(b *testing.B, n int, op func(i int) error) {
	b.ReportAllocs()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range n {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}
