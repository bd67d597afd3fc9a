package usage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

// TestEveryOperationCheckedWithinABudget: after downtime, every operation of
// the catch-up (two label sets over six hours) is checked with its own
// operation id before it is reported, at most WithMaxChecksPerFlush checks
// per flush; the rest wait for the next flush, oldest first.
func TestEveryOperationCheckedWithinABudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, withMaxChecksPerFlush(5))
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	db := map[string]string{usage.LabelResourceName: "db-1"}
	for h := range 6 {
		at := t0.Add(time.Duration(h)*time.Hour + time.Minute)
		e.record(c, "requests", 1, at, nil)
		e.record(c, "requests", 10, at, db)
	}
	require.NoError(t, e.clock.Set(t0.Add(6*time.Hour+usage.DefaultSealGrace)))
	var perFlush []int
	for range 4 {
		before := e.srv.CheckCalls(c.UsageReportingID)
		e.flush()
		perFlush = append(perFlush, e.srv.CheckCalls(c.UsageReportingID)-before)
	}
	assert.Equal(t, []int{5, 5, 2, 0}, perFlush, "checks per flush")
	reports := e.srv.Reports()
	require.Len(t, reports, 12)
	for i := 1; i < len(reports); i++ {
		assert.False(t, reports[i].Start.Before(reports[i-1].Start), "oldest windows first")
	}
	assert.Empty(t, e.srv.UncheckedReports(), "every operation checked with its own id")
	assert.Empty(t, e.open())
	assert.Equal(t, int64(66), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
	assert.Empty(t, e.srv.Violations())
	requireContiguous(t, e.srv, c.UsageReportingID, t0, t0.Add(6*time.Hour))
}

type alertLog struct {
	mu     sync.Mutex
	alerts []usage.DeadlineAlert
}

func (l *alertLog) add(_ context.Context, a usage.DeadlineAlert) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.alerts = append(l.alerts, a)
}

func (l *alertLog) missed(operationID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.alerts {
		if a.Missed && a.Window.OperationID == operationID {
			return true
		}
	}
	return false
}

// TestUnlistedCheckErrorRejectsAfterDeadline: a check error code in neither
// the stop-serving nor the transient list holds the window like a transient
// failure until its deadline has passed (and it was answered at least three
// times); the window then leaves Pending, Rejected with the code, and is no
// longer checked. A transient code keeps its window Pending. Retry after the
// cause is fixed reports it.
func TestUnlistedCheckErrorRejectsAfterDeadline(t *testing.T) {
	t.Parallel()
	var alerts alertLog
	var serving servingLog
	e := newEnv(t, nil, withDeadlineAlert(10*time.Minute, alerts.add), withServingChanged(serving.add))
	ctx := context.Background()
	t0 := e.clock.Now()
	odd := e.consumer(time.Time{}, time.Time{})
	transient := e.consumer(time.Time{}, time.Time{})
	e.srv.SetCheckError(odd.UsageReportingID, "API_TARGET_BLOCKED")
	e.srv.SetCheckError(transient.UsageReportingID, "SERVICE_STATUS_UNAVAILABLE")
	e.record(odd, "requests", 5, t0.Add(time.Minute), nil)
	e.record(transient, "requests", 6, t0.Add(time.Minute), nil)
	require.NoError(t, e.clock.Set(t0.Add(time.Hour+usage.DefaultSealGrace)))
	e.flush()
	ws, err := e.ledger.ListWindows(ctx, ledger.WindowQuery{EntitlementID: odd.EntitlementID})
	require.NoError(t, err)
	require.Len(t, ws, 1)
	w := ws[0]

	// Until the deadline, the window waits.
	for e.clock.Now().Before(w.Deadline) {
		e.flush()
		e.clock.Advance(10 * time.Minute)
	}
	require.Len(t, e.open(), 2, "both windows wait until their deadline")
	require.True(t, e.clock.Now().Before(w.Deadline.Add(10*time.Minute)))
	for range 3 {
		e.flush()
		e.clock.Advance(time.Minute)
	}
	got, err := e.ledger.ListWindows(ctx, ledger.WindowQuery{OperationID: w.OperationID})
	require.NoError(t, err)
	assert.Equal(t, usage.StateRejected, got[0].State, "unlisted code: out of Pending after the bound")
	assert.Contains(t, got[0].Reason, "API_TARGET_BLOCKED")
	assert.True(t, alerts.missed(w.OperationID), "the operator was told")
	tw, err := e.ledger.ListWindows(ctx, ledger.WindowQuery{EntitlementID: transient.EntitlementID})
	require.NoError(t, err)
	assert.Equal(t, usage.StatePending, tw[0].State, "a transient code keeps its window Pending")
	assert.Empty(t, serving.list(), "neither code blocks the consumer")

	e.clock.Advance(10 * time.Minute)
	e.flush()
	got, err = e.ledger.ListWindows(ctx, ledger.WindowQuery{OperationID: w.OperationID})
	require.NoError(t, err)
	assert.Equal(t, usage.StateRejected, got[0].State, "no longer claimed nor checked")

	e.srv.ClearCheckError(odd.UsageReportingID)
	require.NoError(t, e.rep.Retry(ctx, w.OperationID))
	e.flush()
	assert.Equal(t, int64(5), e.srv.BilledTotal(odd.UsageReportingID, metricRequests))
	assert.Empty(t, e.srv.Violations())
}

// TestStalledReporterSendsNothingAfterTakeover: reporter A claims a window
// and stalls before sending it past its lease; B takes the window over and
// reports it. A, resuming, sends nothing: its "sent" mark carries a lease
// token no longer current. With the same owner name (a replica restarted
// under the same name while its old process stalled) only the token tells
// the two claims apart.
func TestStalledReporterSendsNothingAfterTakeover(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		a, b   string
		ledger func(testing.TB) ledger.Ledger
	}{
		"other owner": {"replica-a", "replica-b", func(testing.TB) ledger.Ledger { return memLedger() }},
		"same owner":  {"replica", "replica", func(t testing.TB) ledger.Ledger { return sqliteLedger(t, "") }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var e *env
			var b *usage.Reporter
			stalls := 0
			stall := func() {
				if stalls++; stalls > 1 {
					return
				}
				e.clock.Advance(defaultLease + time.Minute)
				require.NoError(t, b.Flush(ctx))
			}
			shared := tc.ledger(t)
			e = newEnv(t, shared, withOwner(tc.a), usage.WithBeforeSendHook(stall))
			b = e.newReporter(shared, withOwner(tc.b), usage.WithBeforeSendHook(nil))
			c := e.consumer(time.Time{}, time.Time{})
			e.record(c, "requests", 7, e.clock.Now().Add(time.Minute), nil)
			e.clock.Advance(time.Hour)
			e.flush() // A stalls in it while B reports

			require.Equal(t, 1, stalls)
			assert.Equal(t, 1, e.srv.ReportCalls(), "only B sent")
			assert.Empty(t, e.srv.Resends(), "A resent nothing")
			require.Len(t, e.srv.Reports(), 1)
			assert.Equal(t, int64(7), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
			ws, err := shared.ListWindows(ctx, ledger.WindowQuery{})
			require.NoError(t, err)
			require.Len(t, ws, 1)
			assert.Equal(t, usage.StateReported, ws[0].State, "A did not overwrite B's outcome")
			assert.Equal(t, 1, ws[0].Attempts)
		})
	}
}

// TestFlushCancelledMidCallReturnsError: a Flush whose context is cancelled
// during the report call returns the cancellation, not nil; the outcome of
// the call is still recorded, so nothing is sent twice.
func TestFlushCancelledMidCallReturnsError(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Ten-minute windows keep the hourly prune (which would fail on the
	// cancelled context anyway) out of the cancelled flush.
	e := newEnv(t, nil, withWindow(10*time.Minute), usage.WithAfterReportHook(cancel))
	c := e.consumer(time.Time{}, time.Time{})
	e.flush()
	e.record(c, "requests", 3, e.clock.Now().Add(time.Minute), nil)
	e.clock.Advance(10*time.Minute + usage.DefaultSealGrace)
	err := e.rep.Flush(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, e.srv.ReportCalls())

	e.flush()
	assert.Equal(t, 1, e.srv.ReportCalls(), "the outcome was recorded despite the cancellation")
	assert.Equal(t, int64(3), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
	assert.Empty(t, e.open())
}

// TestFlushCancelledBeforeSendMarksNothing: cancelled between the check and
// the send, Flush returns the cancellation and the windows are not counted
// as sent; the next flush sends them once.
func TestFlushCancelledBeforeSendMarksNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t, nil, usage.WithBeforeSendHook(cancel))
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 4, e.clock.Now().Add(time.Minute), nil)
	e.clock.Advance(time.Hour + usage.DefaultSealGrace)
	require.ErrorIs(t, e.rep.Flush(ctx), context.Canceled)
	assert.Zero(t, e.srv.ReportCalls())
	open := e.open()
	require.Len(t, open, 1)
	assert.Zero(t, open[0].Attempts, "not marked sent")

	e.flush() // released at once, not held until the lease expires
	assert.Equal(t, int64(4), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
	assert.Empty(t, e.srv.Resends())
}

// TestBlockedConsumerCheckedOncePerFlush: while a consumer is blocked, its
// held windows are not each checked at every flush: only the latest is
// (one check per flush). When it passes, every window is checked with its
// own id before it is reported.
func TestBlockedConsumerCheckedOncePerFlush(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	e.srv.SetCheckError(c.UsageReportingID, "BILLING_DISABLED")
	for h := range 4 {
		e.record(c, "requests", 2, t0.Add(time.Duration(h)*time.Hour+time.Minute), nil)
		require.NoError(t, e.clock.Set(t0.Add(time.Duration(h+1)*time.Hour+usage.DefaultSealGrace)))
		e.flush()
	}
	require.Len(t, e.open(), 4, "four windows held")
	for range 3 {
		e.clock.Advance(defaultCheckCacheTTL)
		before := e.srv.CheckCalls(c.UsageReportingID)
		e.flush()
		assert.Equal(t, 1, e.srv.CheckCalls(c.UsageReportingID)-before, "one check per flush while blocked")
	}
	assert.Empty(t, e.srv.Reports())

	e.srv.ClearCheckError(c.UsageReportingID)
	e.clock.Advance(defaultCheckCacheTTL)
	e.flush()
	require.Len(t, e.srv.Reports(), 4)
	assert.Empty(t, e.srv.UncheckedReports(), "every operation checked with its own id")
	assert.Equal(t, int64(8), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
	assert.Empty(t, e.open())
}
