package usage_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

func TestReportOneHour(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	cache := map[string]string{usage.LabelResourceName: "cache-1", usage.LabelContainerName: "prod"}
	e.record(c, "requests", 5, t0.Add(time.Minute), nil)
	e.record(c, metricRequests, 7, t0.Add(30*time.Minute), nil)
	e.record(c, "storage_gib", 3, t0.Add(40*time.Minute), cache)
	e.record(c, "requests", 1, t0.Add(50*time.Minute), cache)

	e.flush() // the hour is still open: nothing is sent
	assert.Empty(t, e.srv.Reports())

	e.clock.Advance(time.Hour + usage.DefaultSealGrace)
	e.flush()
	reports := e.srv.Reports()
	require.Len(t, reports, 2, "one operation per label set")
	assert.Empty(t, e.srv.Violations())
	assert.Equal(t, 2, e.srv.CheckCalls(c.UsageReportingID), "one check per operation, with its id")
	assert.Empty(t, e.srv.UncheckedReports())
	assert.Equal(t, 1, e.srv.ReportCalls(), "both operations in one call")
	assert.Equal(t, int64(13), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
	assert.Equal(t, int64(3), e.srv.BilledTotal(c.UsageReportingID, metricStorage))
	for _, op := range reports {
		assert.True(t, op.Start.Equal(t0) && op.End.Equal(t0.Add(time.Hour)), "window [%v, %v)", op.Start, op.End)
		var names []string
		for _, m := range op.Metrics {
			names = append(names, m.Name)
		}
		labels := "{}"
		if len(op.UserLabels) > 0 {
			labels = `{"cloudmarketplace.googleapis.com/container_name":"prod","cloudmarketplace.googleapis.com/resource_name":"cache-1"}`
			assert.Equal(t, cache, op.UserLabels)
		}
		assert.Equal(t, usage.OperationID(c.EntitlementID, t0, names, labels), op.OperationID, "deterministic id")
	}

	// Nothing is sent twice; the next hour, idle, gets a zero operation.
	e.flush()
	assert.Len(t, e.srv.Reports(), 2)
	e.clock.Advance(time.Hour)
	e.flush()
	reports = e.srv.Reports()
	require.Len(t, reports, 3)
	zero := reports[2]
	assert.True(t, zero.Start.Equal(t0.Add(time.Hour)))
	require.Len(t, zero.Metrics, 2, "a zero operation carries every declared metric")
	for _, m := range zero.Metrics {
		assert.Zero(t, m.Int64)
	}
	backlog, err := e.rep.Backlog(context.Background())
	require.NoError(t, err)
	assert.Empty(t, backlog)
	requireContiguous(t, e.srv, c.UsageReportingID, t0, t0.Add(2*time.Hour))
}

func TestRecordRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t0 := e.clock.Now()
	c := e.consumer(t0.Add(-2*time.Hour), t0.Add(2*time.Hour))
	ctx := context.Background()
	long := strings.Repeat("a", 64)
	cases := map[string]struct {
		rec  usage.Record
		want error
	}{
		"unknown entitlement": {usage.Record{EntitlementID: "nope", Metric: "requests", Int64: 1}, usage.ErrUnknownConsumer},
		"empty entitlement":   {usage.Record{Metric: "requests", Int64: 1}, usage.ErrInvalid},
		"negative value":      {usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: -1}, usage.ErrInvalid},
		"unknown metric":      {usage.Record{EntitlementID: c.EntitlementID, Metric: "cpu", Int64: 1}, usage.ErrInvalid},
		"double on int64":     {usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Double: 1.5}, usage.ErrInvalid},
		"future":              {usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1, Time: t0.Add(time.Second)}, usage.ErrInvalid},
		"before start":        {usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1, Time: t0.Add(-3 * time.Hour)}, usage.ErrBeforeStart},
		"upper-case label":    {usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1, Labels: map[string]string{"Env": "x"}}, usage.ErrInvalid},
		"label value space":   {usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1, Labels: map[string]string{"env": "a b"}}, usage.ErrInvalid},
		"label too long":      {usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1, Labels: map[string]string{"env": long}}, usage.ErrInvalid},
		"foreign prefix":      {usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1, Labels: map[string]string{"example.com/x": "y"}}, usage.ErrInvalid},
		"key starts digit":    {usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1, Labels: map[string]string{"1x": "y"}}, usage.ErrInvalid},
	}
	for name, tc := range cases {
		err := e.rep.Record(ctx, tc.rec)
		assert.ErrorIs(t, err, tc.want, name)
	}
	// After the end (cancellation) too, once the clock is past it.
	e.clock.Advance(3 * time.Hour)
	err := e.rep.Record(ctx, usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1})
	assert.ErrorIs(t, err, usage.ErrAfterEnd)

	// Nothing was stored: the windows carry zeros only.
	e.clock.Advance(time.Hour)
	e.flush()
	require.NotEmpty(t, e.srv.Reports())
	assert.Zero(t, e.srv.BilledTotal(c.UsageReportingID, metricRequests))
}

// TestContiguousDay records random usage for a day while flushing every ten
// minutes: every consumer's windows chain from registration to the end of
// the day, every unit is billed once.
func TestContiguousDay(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t0 := e.clock.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	var cs []usage.Consumer
	want := map[string]int64{}
	for range 3 {
		cs = append(cs, e.consumer(time.Time{}, time.Time{}))
	}
	for step := 0; step < 24*6; step++ {
		for _, c := range cs {
			if rng.IntN(3) == 0 {
				continue // idle stretches make zero windows
			}
			v := rng.Int64N(100)
			e.record(c, "requests", v, e.clock.Now().Add(-time.Duration(rng.IntN(60))*time.Second), nil)
			want[c.UsageReportingID] += v
		}
		e.clock.Advance(10 * time.Minute)
		e.flush()
	}
	e.clock.Advance(time.Hour)
	e.drain(time.Minute, 5)
	assert.Empty(t, e.srv.Violations())
	end := e.clock.Now().Add(-usage.DefaultSealGrace).Truncate(time.Hour)
	for _, c := range cs {
		requireContiguous(t, e.srv, c.UsageReportingID, t0, end)
		assert.Equal(t, want[c.UsageReportingID], e.srv.BilledTotal(c.UsageReportingID, metricRequests))
	}
}

// TestCatchUpAfterDowntime: nothing flushes for six hours; the next flush
// reports every missed window, none skipped, each checked with its own
// operation id.
func TestCatchUpAfterDowntime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sqliteLedger(t, ""))
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	var want int64
	for h := range 6 {
		if h == 2 {
			e.clock.Advance(time.Hour) // an idle hour
			continue
		}
		e.record(c, "requests", int64(h+1), e.clock.Now().Add(time.Minute), nil)
		want += int64(h + 1)
		e.clock.Advance(time.Hour)
	}
	e.clock.Advance(usage.DefaultSealGrace)
	e.flush()
	assert.Len(t, e.srv.Reports(), 6)
	assert.Equal(t, 6, e.srv.CheckCalls(c.UsageReportingID))
	assert.Empty(t, e.srv.UncheckedReports(), "every operation checked with its own id")
	assert.Equal(t, want, e.srv.BilledTotal(c.UsageReportingID, metricRequests))
	assert.Empty(t, e.srv.Violations())
	requireContiguous(t, e.srv, c.UsageReportingID, t0, t0.Add(6*time.Hour))
}

// TestCancellationMidHour: the final window ends at the cancellation time and
// carries only the usage before it.
func TestCancellationMidHour(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 4, t0.Add(10*time.Minute), nil)
	e.clock.Advance(35 * time.Minute)
	// The processor learns of the cancellation at t0+30m.
	c.End = t0.Add(30 * time.Minute)
	require.NoError(t, e.rep.Register(context.Background(), c))
	e.record(c, "requests", 2, t0.Add(20*time.Minute), nil)
	err := e.rep.Record(context.Background(), usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 9, Time: t0.Add(31 * time.Minute)})
	require.ErrorIs(t, err, usage.ErrAfterEnd)

	for range 4 {
		e.clock.Advance(time.Hour)
		e.flush()
	}
	reports := e.srv.Reports()
	require.Len(t, reports, 1, "one final window, nothing after the end")
	assert.True(t, reports[0].Start.Equal(t0) && reports[0].End.Equal(t0.Add(30*time.Minute)), "final window [%v, %v)", reports[0].Start, reports[0].End)
	assert.Equal(t, int64(6), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
	assert.Empty(t, e.srv.Violations())
	// Late usage from before the cancellation can no longer be carried.
	err = e.rep.Record(context.Background(), usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1, Time: t0.Add(29 * time.Minute)})
	assert.ErrorIs(t, err, usage.ErrWindowSealed)
}

// TestUsageRecordedBeforeCancellationKnown: usage in windows wholly after
// an end registered late is never reported and shows in the backlog.
func TestUsageRecordedBeforeCancellationKnown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 4, t0.Add(10*time.Minute), nil)
	e.clock.Advance(70 * time.Minute)
	e.record(c, "requests", 8, t0.Add(65*time.Minute), nil) // in the next window
	c.End = t0.Add(30 * time.Minute)
	require.NoError(t, e.rep.Register(context.Background(), c))
	e.clock.Advance(2 * time.Hour)
	e.flush()
	assert.Equal(t, int64(4), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
	backlog, err := e.rep.Backlog(context.Background())
	require.NoError(t, err)
	require.Len(t, backlog, 1)
	assert.Equal(t, usage.StateRejected, backlog[0].State)
	assert.Equal(t, int64(8), backlog[0].Values[0].Int64)
	assert.Contains(t, backlog[0].Reason, "after the entitlement's end")
}

// TestLateRecordGetsItsOwnOperation: usage of a sealed hour joins the next
// window; the sealed operation never changes.
func TestLateRecordGetsItsOwnOperation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 10, t0.Add(5*time.Minute), nil)
	e.clock.Advance(time.Hour + usage.DefaultSealGrace)
	e.flush()
	e.record(c, "requests", 3, t0.Add(59*time.Minute), nil) // late for the first hour
	e.clock.Advance(time.Hour)
	e.flush()
	reports := e.srv.Reports()
	require.Len(t, reports, 2)
	assert.Equal(t, int64(10), reports[0].Metrics[0].Int64)
	assert.True(t, reports[1].Start.Equal(t0.Add(time.Hour)))
	assert.Equal(t, int64(3), reports[1].Metrics[0].Int64)
	assert.NotEqual(t, reports[0].OperationID, reports[1].OperationID)
	assert.Empty(t, e.srv.Violations())
}

func TestDoubleMetric(t *testing.T) {
	t.Parallel()
	svc := "svc.endpoints.acme.cloud.goog"
	srv := marketplacetest.New(t, marketplacetest.WithService(svc, "requests"), marketplacetest.WithMetricType(svc, "cpu_hours", marketplacetest.ValueDouble))
	r, err := usage.New(context.Background(), svc, memLedger(), &usage.Config{
		Runtime: gcpmarketplace.Runtime{Clock: srv.Clock().Now},
		Metrics: map[string]usage.MetricKind{"requests": usage.Int64, svc + "/cpu_hours": usage.Double},
	}, srv.ClientOptions()...)
	require.NoError(t, err)
	id, err := srv.Purchase(context.Background(), marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true})
	require.NoError(t, err)
	ent, _ := srv.Entitlement(id)
	require.NoError(t, r.Register(context.Background(), usage.Consumer{EntitlementID: id, UsageReportingID: ent.UsageReportingID}))
	for range 3 {
		require.NoError(t, r.Record(context.Background(), usage.Record{EntitlementID: id, Metric: "cpu_hours", Double: 0.25}))
	}
	err = r.Record(context.Background(), usage.Record{EntitlementID: id, Metric: "cpu_hours", Int64: 1})
	require.ErrorIs(t, err, usage.ErrInvalid)
	srv.Clock().Advance(2 * time.Hour)
	require.NoError(t, r.Flush(context.Background()))
	var sum float64
	for _, op := range srv.Reports() {
		for _, m := range op.Metrics {
			if m.Name == svc+"/cpu_hours" {
				require.True(t, m.IsDouble)
				sum += m.Double
			}
		}
	}
	assert.InDelta(t, 0.75, sum, 1e-9)
}
