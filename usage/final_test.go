package usage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	mt "github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// finalLedgers are the stores the final-window tests run on: Seal's
// selection of ended consumers is the store's, not the Reporter's.
var finalLedgers = map[string]func(t *testing.T) ledger.Ledger{
	"memstore":    func(*testing.T) ledger.Ledger { return memLedger() },
	"sqlitestore": func(t *testing.T) ledger.Ledger { return sqliteLedger(t, "") },
}

// cancel registers c's cancellation at end.
func (e *env) cancel(c *usage.Consumer, end time.Time) {
	e.t.Helper()
	c.End = end
	require.NoError(e.t, e.rep.Register(context.Background(), *c))
}

// reportsOf is what the emulator accepted for consumerID, in order.
func reportsOf(srv *mt.Server, consumerID string) []mt.ReportedOperation {
	var out []mt.ReportedOperation
	for _, op := range srv.Reports() {
		if op.ConsumerID == consumerID {
			out = append(out, op)
		}
	}
	return out
}

// TestFinalWindowSealedWithinGraceOfEnd: a consumer cancelled at 10:00:30
// has its final window [10:00, 10:00:30) sealed and reported by the first
// flush after End plus the grace, long before its deadline (End plus one
// hour), with or without usage in it; a live consumer's open window waits
// for its end.
func TestFinalWindowSealedWithinGraceOfEnd(t *testing.T) {
	t.Parallel()
	for name, newLedger := range finalLedgers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, newLedger(t))
			t0 := e.clock.Now()
			require.True(t, t0.Equal(t0.Truncate(time.Hour)), "the emulator starts on the hour")
			busy := e.consumer(time.Time{}, time.Time{})
			idle := e.consumer(time.Time{}, time.Time{})
			live := e.consumer(time.Time{}, time.Time{})
			e.record(busy, "requests", 7, t0.Add(10*time.Minute), nil)
			e.record(live, "requests", 1, t0.Add(20*time.Minute), nil)
			e.record(busy, "requests", 5, t0.Add(time.Hour+10*time.Second), nil)
			e.record(live, "requests", 3, t0.Add(time.Hour+10*time.Second), nil)
			end := t0.Add(time.Hour + 30*time.Second)
			require.NoError(t, e.clock.Set(end))
			e.cancel(&busy, end)
			e.cancel(&idle, end)

			// Run's cadence, finer: End plus the grace is 10:01:30.
			for e.clock.Now().Before(end.Add(usage.DefaultSealGrace)) {
				e.clock.Advance(30 * time.Second)
				e.flush()
			}
			for _, c := range []usage.Consumer{busy, idle} {
				ops := reportsOf(e.srv, c.UsageReportingID)
				require.Len(t, ops, 2, "the first hour and the final window")
				final := ops[1]
				assert.True(t, final.Start.Equal(t0.Add(time.Hour)) && final.End.Equal(end), "final window [%v, %v)", final.Start, final.End)
				assert.False(t, final.ReportedAt.After(end.Add(usage.DefaultSealGrace)), "reported at %v", final.ReportedAt)
				ws, err := e.ledger.ListWindows(context.Background(), ledger.WindowQuery{EntitlementID: c.EntitlementID})
				require.NoError(t, err)
				require.Len(t, ws, 2)
				assert.Equal(t, usage.StateReported, ws[1].State)
				assert.True(t, ws[1].Deadline.Equal(end.Add(time.Hour)), "deadline %v", ws[1].Deadline)
			}
			assert.Equal(t, int64(12), e.srv.BilledTotal(busy.UsageReportingID, metricRequests))
			assert.Equal(t, int64(0), e.srv.BilledTotal(idle.UsageReportingID, metricRequests), "zero operations")
			require.Len(t, reportsOf(e.srv, live.UsageReportingID), 1, "the live consumer's open window is not sealed")

			// Nothing after End; the live consumer goes on, hour by hour.
			for e.clock.Now().Before(t0.Add(3*time.Hour + 2*time.Minute)) {
				e.clock.Advance(time.Minute)
				e.flush()
			}
			requireContiguous(t, e.srv, busy.UsageReportingID, t0, end)
			requireContiguous(t, e.srv, idle.UsageReportingID, t0, end)
			requireContiguous(t, e.srv, live.UsageReportingID, t0, t0.Add(3*time.Hour))
			assert.Equal(t, int64(4), e.srv.BilledTotal(live.UsageReportingID, metricRequests))
			assert.Empty(t, e.srv.Violations())
			assert.Empty(t, e.open())
		})
	}
}

// TestFinalWindowRetriedBeforeItsDeadline: when the first report of a
// final window fails with an unknown outcome, the resend a minute later
// still lands well before its deadline, so the window is Reported, not
// Expired, and no deadline alert fires.
func TestFinalWindowRetriedBeforeItsDeadline(t *testing.T) {
	t.Parallel()
	for name, newLedger := range finalLedgers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var alerts []usage.DeadlineAlert
			e := newEnv(t, newLedger(t), withDeadlineAlert(10*time.Minute, func(_ context.Context, a usage.DeadlineAlert) {
				mu.Lock()
				defer mu.Unlock()
				alerts = append(alerts, a)
			}))
			t0 := e.clock.Now()
			c := e.consumer(time.Time{}, time.Time{})
			e.record(c, "requests", 5, t0.Add(10*time.Second), nil)
			end := t0.Add(30 * time.Second)
			require.NoError(t, e.clock.Set(end))
			e.cancel(&c, end)

			// The first report call (the final window's) fails with a 500:
			// the outcome is unknown.
			e.srv.InjectFault(mt.Fault{Method: mt.MethodServicesReport, Kind: mt.FaultStatus, Status: 500})
			for range 90 {
				e.clock.Advance(time.Minute)
				e.flush()
			}
			ws, err := e.ledger.ListWindows(context.Background(), ledger.WindowQuery{EntitlementID: c.EntitlementID})
			require.NoError(t, err)
			require.Len(t, ws, 1, "one final window")
			w := ws[0]
			assert.True(t, w.Start.Equal(t0) && w.End.Equal(end), "final window [%v, %v)", w.Start, w.End)
			assert.Equal(t, usage.StateReported, w.State, w.Reason)
			assert.Equal(t, 2, w.Attempts, "sent, failed, resent")
			assert.True(t, w.Deadline.Equal(end.Add(time.Hour)), "deadline %v", w.Deadline)
			assert.True(t, w.ReportedAt.Before(end.Add(usage.DefaultSealGrace+3*time.Minute)), "reported at %v, deadline %v", w.ReportedAt, w.Deadline)
			assert.Equal(t, int64(5), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
			backlog, err := e.rep.Backlog(context.Background())
			require.NoError(t, err)
			assert.Empty(t, backlog)
			mu.Lock()
			assert.Empty(t, alerts, "no deadline alert")
			mu.Unlock()
		})
	}
}

// A window of usage recorded after End is rejected under an id of its own.
// A registration that then clears the End (stale: only a pending
// cancellation, whose End is still in the future, can be reverted) does
// not reopen the consumer: later usage is refused and nothing is billed.
// (Before the End in effect was kept, such a "revert" sealed a window for
// the same hour, which had to be billed rather than taken for the
// rejected one.)
func TestRejectedAfterEndWindowDoesNotShadowALaterOne(t *testing.T) {
	t.Parallel()
	for name, newLedger := range finalLedgers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, newLedger(t))
			t0 := e.clock.Now()
			c := e.consumer(time.Time{}, time.Time{})
			e.record(c, "requests", 7, t0.Add(20*time.Minute), nil)
			require.NoError(t, e.clock.Set(t0.Add(30*time.Minute)))
			e.cancel(&c, t0.Add(-10*time.Second)) // registered late, End before the usage's window
			e.flush()
			e.cancel(&c, time.Time{}) // a stale registration without End: ignored
			require.NoError(t, e.clock.Set(t0.Add(40*time.Minute)))
			err := e.rep.Record(context.Background(), usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 9, Time: t0.Add(40 * time.Minute)})
			require.ErrorIs(t, err, usage.ErrAfterEnd)
			require.NoError(t, e.clock.Set(t0.Add(62*time.Minute)))
			e.flush()
			assert.Equal(t, int64(0), billedOnce(e.srv, c.UsageReportingID, metricRequests))
			ws, err := e.ledger.ListWindows(context.Background(), ledger.WindowQuery{EntitlementID: c.EntitlementID, States: []usage.WindowState{usage.StateRejected}})
			require.NoError(t, err)
			require.Len(t, ws, 1)
			assert.Equal(t, int64(7), ws[0].Values[0].Int64)
			requireNoDoubleBilling(t, e.srv)
		})
	}
}

// A cancellation is often learned after the fact: ENTITLEMENT_CANCELLED
// arrives after its updateTime, the consumer's End. Usage recorded in
// between, in the same hour, is refused at seal (a Rejected window), not
// billed in the final window.
func TestUsageRecordedBeforeALateCancellationIsNotBilledAfterEnd(t *testing.T) {
	t.Parallel()
	for name, newLedger := range finalLedgers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, newLedger(t))
			t0 := e.clock.Now()
			c := e.consumer(time.Time{}, time.Time{})
			e.record(c, "requests", 5, t0.Add(10*time.Minute), nil)   // before the cancellation
			e.record(c, "requests", 100, t0.Add(25*time.Minute), nil) // after it, before the SDK knew
			require.NoError(t, e.clock.Set(t0.Add(30*time.Minute)))
			e.cancel(&c, t0.Add(20*time.Minute)) // ENTITLEMENT_CANCELLED (updateTime 20 past) processed now
			e.flush()
			assert.Equal(t, int64(5), billedOnce(e.srv, c.UsageReportingID, metricRequests))
			for _, op := range reportsOf(e.srv, c.UsageReportingID) {
				assert.False(t, op.End.After(c.End), "operation [%v, %v) beyond End %v", op.Start, op.End, c.End)
			}
			rejected, err := e.ledger.ListWindows(context.Background(), ledger.WindowQuery{EntitlementID: c.EntitlementID, States: []usage.WindowState{usage.StateRejected}})
			require.NoError(t, err)
			require.Len(t, rejected, 1)
			assert.Equal(t, int64(100), rejected[0].Values[0].Int64)
			requireNoDoubleBilling(t, e.srv)
		})
	}
}

// With a window that is not a whole number of minutes, the ledger's
// buckets still nest in windows: usage is reported in the window that
// contains its time.
func TestUsageInItsWindowWhenWindowIsNotWholeMinutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, withWindow(90*time.Second))
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	at := t0.Add(100 * time.Second) // in [1m30s, 3m00s)
	e.record(c, "requests", 4, at, nil)
	require.NoError(t, e.clock.Set(t0.Add(10*time.Minute)))
	e.flush()
	var found bool
	for _, op := range reportsOf(e.srv, c.UsageReportingID) {
		for _, m := range op.Metrics {
			if m.Name == metricRequests && m.Int64 == 4 {
				found = true
				assert.False(t, at.Before(op.Start) || !at.Before(op.End), "usage at %v reported in [%v, %v)", at, op.Start, op.End)
			}
		}
	}
	assert.True(t, found, "the usage was reported")
	requireNoDoubleBilling(t, e.srv)
}
