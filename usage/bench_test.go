package usage_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/stretchr/testify/require"
	servicecontrol "google.golang.org/api/servicecontrol/v1"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/sqlitestore"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// BenchmarkRecordSQLite: durable Record calls from 8 concurrent callers on
// sqlitestore (synchronous=FULL, group commit), against the baseline below.
func BenchmarkRecordSQLite(b *testing.B) {
	e := newEnv(b, sqliteLedger(b, filepath.Join(b.TempDir(), "l.db")))
	var cs []usage.Consumer
	for range 64 {
		cs = append(cs, e.consumer(time.Time{}, time.Time{}))
	}
	e.clock.Advance(time.Minute)
	labels := map[string]string{usage.LabelResourceName: "db-1"}
	var n atomic.Int64
	b.SetParallelism(8 / max(1, runtimeProcs()))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := n.Add(1)
			c := cs[i%int64(len(cs))]
			if err := e.rep.Record(ctx, usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1, Labels: labels}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkRecordSQLiteBaseline is the plain floor: one small durable insert
// per transaction (MarkProcessed) from 8 callers on the same kind of store.
func BenchmarkRecordSQLiteBaseline(b *testing.B) {
	s, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "b.db"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	var n atomic.Int64
	b.SetParallelism(8 / max(1, runtimeProcs()))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			id := "ev-" + strconv.FormatInt(n.Add(1), 10)
			if err := s.InTx(ctx, func(ctx context.Context, tx marketplace.Tx) error {
				_, err := tx.MarkProcessed(ctx, id, time.Now())
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// benchConsumers is the number of entitlements of the flush benchmarks:
// USAGE_BENCH_CONSUMERS, default 2000, which keeps a plain -bench run
// short. The acceptance figure uses 10000 (about 10 s of set-up, once per
// process).
func benchConsumers() int {
	if n, err := strconv.Atoi(os.Getenv("USAGE_BENCH_CONSUMERS")); err == nil && n > 0 {
		return n
	}
	return 2000
}

// flushFixture is built once per process and shared by the flush benchmark
// and its baseline: the emulator outlives the individual benchmark runs.
var flushFixture = sync.OnceValues(func() (*marketplacetest.Server, []usage.Consumer) {
	srv := marketplacetest.New(nil)
	cs := make([]usage.Consumer, benchConsumers())
	for i := range cs {
		// Active, as a usage-based entitlement is once provisioned: the
		// flush confirms each one with Procurement before sealing.
		id, err := srv.Purchase(context.Background(), marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true})
		if err != nil {
			panic(err)
		}
		ent, _ := srv.Entitlement(id)
		cs[i] = usage.Consumer{EntitlementID: id, UsageReportingID: ent.UsageReportingID}
	}
	// The purchases published their notifications to the emulator's
	// subscription, which nothing reads here. pstest rescans every
	// unacknowledged message every 10 ms: with 10,000 entitlements that
	// was 43% of the process's CPU samples, beside the reporter and its
	// baseline alike.
	_, err := srv.PubSub().GServer.DeleteSubscription(context.Background(),
		&pubsubpb.DeleteSubscriptionRequest{Subscription: srv.Subscription()})
	if err != nil {
		panic(err)
	}
	return srv, cs
})

func parallel(b *testing.B, cs []usage.Consumer, fn func(usage.Consumer) error) {
	var next atomic.Int64
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(cs)) {
					errs <- nil
					return
				}
				if err := fn(cs[i]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 8 {
		require.NoError(b, <-errs)
	}
}

// BenchmarkFlush: one hour of every entitlement (one operation each, with
// the two reserved labels) confirmed not ended with Procurement, sealed,
// checked (a check per operation, with its own id: one per consumer) and
// reported, on sqlitestore. USAGE_BENCH_NO_CONFIRM=1 leaves the confirmation
// out, to measure its cost.
func BenchmarkFlush(b *testing.B) { benchFlush(b, false) }

// BenchmarkFlushSource: the same hour with the usage read from a Source at
// seal (an in-memory one, so that what is measured is the reporter's cost
// of asking it: one call per consumer and window) instead of recorded.
func BenchmarkFlushSource(b *testing.B) { benchFlush(b, true) }

func benchFlush(b *testing.B, fromSource bool) {
	srv, cs := flushFixture()
	ctx := context.Background()
	ledger := sqliteLedger(b, filepath.Join(b.TempDir(), "f.db"))
	labels := map[string]string{usage.LabelResourceName: "instance-1", usage.LabelContainerName: "prod"}
	opts := []configFunc{
		withClock(srv.Clock().Now), withMetric("requests", usage.Int64), withConcurrency(16)}
	confirmSeconds := 0.0
	if os.Getenv("USAGE_BENCH_NO_CONFIRM") == "" {
		client, err := procurement.NewClient(ctx, srv.ProviderID(), srv.ClientOptions()...)
		require.NoError(b, err)
		opts = append(opts, withEndConfirmer(client))
		// The confirmation's share of a flush, measured alone.
		ids := make([]string, len(cs))
		for i, c := range cs {
			ids[i] = c.EntitlementID
		}
		start := time.Now()
		ends, err := client.ConfirmEnds(ctx, ids)
		require.NoError(b, err)
		require.Empty(b, ends)
		confirmSeconds = time.Since(start).Seconds() // reported after ResetTimer, which drops metrics
	}
	if fromSource {
		opts = append(opts, withSource(usage.SourceFunc(func(context.Context, usage.SourceQuery) ([]usage.Total, error) {
			return []usage.Total{{Metric: "requests", Int64: 42, Labels: labels}}, nil
		})))
	}
	r, err := usage.New(ctx, srv.ServiceName(), ledger, configOf(opts...), srv.ClientOptions()...)
	require.NoError(b, err)
	parallel(b, cs, func(c usage.Consumer) error { return r.Register(ctx, c) })
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		// Usage in the consumers' open window, which the flush then seals.
		at := srv.Clock().Now().Truncate(time.Hour).Add(time.Minute)
		require.NoError(b, srv.Clock().Set(at))
		if !fromSource {
			parallel(b, cs, func(c usage.Consumer) error {
				return r.Record(ctx, usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 42, Labels: labels, Time: at})
			})
		}
		require.NoError(b, srv.Clock().Set(at.Add(time.Hour)))
		calls0, checks0, ops0 := srv.ReportCalls(), srv.CheckCalls(cs[0].UsageReportingID), len(srv.Reports())
		procurement0 := srv.Calls(marketplacetest.MethodEntitlementsList) + srv.Calls(marketplacetest.MethodEntitlementsGet)
		b.StartTimer()
		require.NoError(b, r.Flush(ctx))
		b.StopTimer()
		ops := srv.Reports()[ops0:]
		bytes := 0
		for _, op := range ops {
			raw, _ := json.Marshal(op)
			bytes += len(raw)
		}
		b.ReportMetric(float64(srv.ReportCalls()-calls0), "report-calls/flush")
		b.ReportMetric(float64(srv.Calls(marketplacetest.MethodEntitlementsList)+srv.Calls(marketplacetest.MethodEntitlementsGet)-procurement0), "procurement-calls/flush")
		b.ReportMetric(float64(srv.CheckCalls(cs[0].UsageReportingID)-checks0), "checks/consumer")
		b.ReportMetric(float64(len(ops)), "ops/flush")
		b.ReportMetric(float64(len(srv.UncheckedReports())), "unchecked-ops")
		b.ReportMetric(float64(bytes)/float64(len(ops)), "B/op-json")
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(confirmSeconds, "confirm-s")
	require.Empty(b, srv.Violations())
}

// BenchmarkFlushBaseline: the same number of operations sent by a bare loop
// (no ledger, no check) in requests of at most 1 MB.
func BenchmarkFlushBaseline(b *testing.B) {
	srv, cs := flushFixture()
	ctx := context.Background()
	svc, err := servicecontrol.NewService(ctx, srv.ClientOptions()...)
	require.NoError(b, err)
	t0 := srv.Clock().Now()
	ops := make([]*servicecontrol.Operation, len(cs))
	for i, c := range cs {
		v := int64(42)
		ops[i] = &servicecontrol.Operation{
			OperationName: "bench", ConsumerId: c.UsageReportingID,
			StartTime: t0.Format(time.RFC3339), EndTime: t0.Add(time.Hour).Format(time.RFC3339),
			UserLabels:      map[string]string{usage.LabelResourceName: "instance-1", usage.LabelContainerName: "prod"},
			MetricValueSets: []*servicecontrol.MetricValueSet{{MetricName: metricRequests, MetricValues: []*servicecontrol.MetricValue{{Int64Value: &v}}}},
		}
	}
	b.ResetTimer()
	for n := range b.N {
		var batch []*servicecontrol.Operation
		size := 20
		send := func() {
			_, err := svc.Services.Report(srv.ServiceName(), &servicecontrol.ReportRequest{Operations: batch}).Context(ctx).Do()
			require.NoError(b, err)
			batch, size = nil, 20
		}
		for i, op := range ops {
			op.OperationId = usage.OperationID(cs[i].EntitlementID, t0.Add(time.Duration(n+1000)*time.Hour), nil, "")
			raw, _ := json.Marshal(op)
			if size+len(raw)+1 > usage.MaxRequestBytes-1024 {
				send()
			}
			batch = append(batch, op)
			size += len(raw) + 1
		}
		send()
	}
}
