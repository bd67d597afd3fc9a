package sqlitestore_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
)

// BenchmarkTx measures the event transaction: mark an event processed and
// upsert its entitlement, committed together. The baseline-* cases do the
// same SQL through plain database/sql on one connection, one commit per
// transaction, which is what group commit is measured against.
func BenchmarkTx(b *testing.B) {
	storeCases := []struct {
		name    string
		workers int
		open    func(b *testing.B) marketplace.Store
	}{
		{"memstore-parallel8", 8, func(*testing.B) marketplace.Store { return memstore.New() }},
		{"sqlite-full-serial", 1, openBench(sqlitestore.SyncFull)},
		{"sqlite-full-parallel8", 8, openBench(sqlitestore.SyncFull)},
		{"sqlite-full-parallel64", 64, openBench(sqlitestore.SyncFull)},
		{"sqlite-normal-parallel8", 8, openBench(sqlitestore.SyncNormal)},
	}
	for _, c := range storeCases {
		b.Run(c.name, func(b *testing.B) {
			s := c.open(b)
			defer s.Close()
			ctx := context.Background()
			now := time.Now()
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
		})
	}
	for _, c := range []struct {
		name    string
		sync    string
		workers int
	}{
		{"baseline-sql-full-serial", "FULL", 1},
		{"baseline-sql-full-parallel8", "FULL", 8},
		{"baseline-sql-normal-parallel8", "NORMAL", 8},
	} {
		b.Run(c.name, func(b *testing.B) { benchBaseline(b, c.sync, c.workers) })
	}
}

func openBench(sync sqlitestore.Synchronous) func(b *testing.B) marketplace.Store {
	return func(b *testing.B) marketplace.Store {
		s, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlitestore.WithSynchronous(sync))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
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

// benchBaseline is the plain way: database/sql, one connection (SQLite has
// one writer), BEGIN IMMEDIATE, two statements, COMMIT with its own fsync.
func benchBaseline(b *testing.B, sync string, workers int) {
	path := filepath.Join(b.TempDir(), "bench.db")
	s, err := sqlitestore.Open(context.Background(), path) // creates the schema
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=synchronous("+sync+")&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	ts := time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z")
	runWorkers(b, workers, func(i int) error {
		id := strconv.Itoa(i)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		if _, err := tx.ExecContext(ctx, "INSERT INTO processed_events (event_id, processed_at) VALUES (?, ?) ON CONFLICT (event_id) DO NOTHING", "ev-"+id, ts); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO entitlements (id, account_id, product, plan, pending_plan, state, usage_reporting_id, update_time, parked, parked_at, cancel_time)"+
			" VALUES (?, 'acct', '', 'basic', '', 'ENTITLEMENT_ACTIVE', '', ?, 0, ?, ?) ON CONFLICT (id) DO UPDATE SET plan = excluded.plan, update_time = excluded.update_time",
			"ent-"+id, ts, ts, ts); err != nil {
			return err
		}
		return tx.Commit()
	})
}
