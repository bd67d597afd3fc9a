package usage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/internal/testenv"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/pgstore"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// latencyCallers is the number of concurrent callers of
// BenchmarkRecordLatency: a busy API server recording usage on its request
// path.
const latencyCallers = 64

// BenchmarkRecordLatency: Reporter.Record from 64 concurrent callers, with
// the latency a request path pays (p50, p99) beside the throughput, on
// SQLite (synchronous=FULL, group commit) and on PostgreSQL (when
// GCPMARKETPLACE_TEST_POSTGRES_URL is set), each next to its baseline in
// the same run: one small durable transaction per call (MarkProcessed) from
// as many callers on the same kind of store.
func BenchmarkRecordLatency(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchRecord(b, sqliteLedger(b, filepath.Join(b.TempDir(), "l.db")))
	})
	b.Run("sqlite-baseline", func(b *testing.B) {
		benchBaseline(b, sqliteLedger(b, filepath.Join(b.TempDir(), "b.db")))
	})
	b.Run("postgres", func(b *testing.B) { benchRecord(b, pgLedger(b)) })
	b.Run("postgres-baseline", func(b *testing.B) { benchBaseline(b, pgLedger(b)) })
}

func benchRecord(b *testing.B, ledger ledger.Ledger) {
	e := newEnv(b, ledger)
	var cs []usage.Consumer
	for range 64 {
		cs = append(cs, e.consumer(time.Time{}, time.Time{}))
	}
	e.clock.Advance(time.Minute)
	labels := map[string]string{usage.LabelResourceName: "db-1"}
	measureCalls(b, func(ctx context.Context, i int64) error {
		c := cs[i%int64(len(cs))]
		return e.rep.Record(ctx, usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1, Labels: labels})
	})
}

func benchBaseline(b *testing.B, s marketplace.Store) {
	measureCalls(b, func(ctx context.Context, i int64) error {
		return s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
			_, err := tx.MarkProcessed(ctx, "ev-"+strconv.FormatInt(i, 10), time.Now())
			return err
		})
	})
}

// measureCalls runs call from latencyCallers goroutines and reports the
// throughput and the latency percentiles of the calls.
func measureCalls(b *testing.B, call func(ctx context.Context, i int64) error) {
	b.Helper()
	var n atomic.Int64
	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism((latencyCallers + runtimeProcs() - 1) / runtimeProcs())
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if err := call(ctx, n.Add(1)); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		all = append(all, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds())
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "records/s")
	b.ReportMetric(pct(0.50), "p50-us")
	b.ReportMetric(pct(0.99), "p99-us")
}

// pgLedger is a pgstore in a schema of its own, dropped at the end, with a
// small pool (the test database is shared): 64 callers wait for 16
// connections, as a request path would. It skips without
// GCPMARKETPLACE_TEST_POSTGRES_URL.
func pgLedger(b *testing.B) *pgstore.Store {
	url := testenv.PostgresURL(b)
	ctx := context.Background()
	schema := fmt.Sprintf("usage_bench_%d", time.Now().UnixNano())
	s, err := pgstore.Open(ctx, testenv.WithPoolSize(url, 16), pgstore.WithSchema(schema))
	require.NoError(b, err)
	b.Cleanup(func() {
		_ = s.Close()
		conn, err := pgx.Connect(ctx, url)
		require.NoError(b, err)
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		require.NoError(b, err)
	})
	return s
}
