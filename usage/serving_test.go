package usage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
	"github.com/gcpmarketplace/gcpmarketplace/usage/ledger"
)

type servingLog struct {
	mu      sync.Mutex
	changes []usage.ServingChange
}

func (l *servingLog) add(_ context.Context, c usage.ServingChange) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, c)
}

func (l *servingLog) list() []usage.ServingChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]usage.ServingChange(nil), l.changes...)
}

func TestStopServingCodesBlockAndReplay(t *testing.T) {
	t.Parallel()
	for _, code := range usage.DefaultStopServingCodes() {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			var log servingLog
			e := newEnv(t, nil, withServingChanged(log.add))
			ctx := context.Background()
			c := e.consumer(time.Time{}, time.Time{})
			e.srv.SetCheckError(c.UsageReportingID, code)
			e.record(c, "requests", 5, e.clock.Now().Add(time.Minute), nil)
			e.clock.Advance(time.Hour)
			e.flush()

			require.Len(t, log.list(), 1)
			assert.False(t, log.list()[0].Serving)
			assert.Equal(t, code, log.list()[0].Block.Code)
			st, err := e.rep.Serving(ctx, c.EntitlementID)
			require.NoError(t, err)
			assert.False(t, st.Serving)
			assert.Equal(t, code, st.Block.Code)
			assert.Empty(t, e.srv.Reports(), "nothing reported while blocked")

			// Usage keeps being collected in hourly windows for replay.
			e.record(c, "requests", 7, e.clock.Now(), nil)
			e.clock.Advance(time.Hour)
			e.flush()
			assert.Len(t, log.list(), 1, "no second callback for the same block")
			backlog, err := e.rep.Backlog(ctx)
			require.NoError(t, err)
			require.Len(t, backlog, 2)
			assert.Contains(t, backlog[0].Reason, code)

			e.srv.ClearCheckError(c.UsageReportingID)
			e.clock.Advance(defaultCheckCacheTTL)
			e.flush()
			require.Len(t, log.list(), 2)
			assert.True(t, log.list()[1].Serving)
			st, err = e.rep.Serving(ctx, c.EntitlementID)
			require.NoError(t, err)
			assert.True(t, st.Serving)
			assert.Equal(t, int64(12), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
			assert.Empty(t, e.srv.Violations())
		})
	}
}

func TestTransientCheckErrorDoesNotBlock(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"SERVICE_STATUS_UNAVAILABLE", "LOAD_SHEDDING", "INJECTED_ERROR", "BILLING_STATUS_UNAVAILABLE"} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			var log servingLog
			e := newEnv(t, nil, withServingChanged(log.add))
			c := e.consumer(time.Time{}, time.Time{})
			e.srv.SetCheckError(c.UsageReportingID, code)
			e.record(c, "requests", 5, e.clock.Now().Add(time.Minute), nil)
			e.clock.Advance(time.Hour)
			e.flush()
			assert.Empty(t, log.list())
			st, err := e.rep.Serving(context.Background(), c.EntitlementID)
			require.NoError(t, err)
			assert.True(t, st.Serving)
			require.Len(t, e.open(), 1)
			assert.Contains(t, e.open()[0].Reason, code)

			e.srv.ClearCheckError(c.UsageReportingID)
			e.drain(time.Minute, 10)
			assert.Equal(t, int64(5), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
			assert.Empty(t, log.list())
		})
	}
}

// TestPartialReportErrors: in one call, only the failed operations are
// retried (transient) or rejected (permanent).
func TestPartialReportErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	t0 := e.clock.Now()
	var cs []usage.Consumer
	for range 3 {
		c := e.consumer(time.Time{}, time.Time{})
		cs = append(cs, c)
	}
	for i, c := range cs {
		e.record(c, "requests", int64(10*(i+1)), t0.Add(time.Minute), nil)
	}
	e.clock.Advance(time.Hour)
	// Seal without sending, to learn the ids.
	ws := sealedWindows(t, e)
	require.Len(t, ws, 3)
	e.srv.InjectReportError(ws[0].OperationID, 14, "backend unavailable")
	e.srv.InjectReportError(ws[1].OperationID, 3, "bad operation")
	e.flush()
	assert.Equal(t, 1, e.srv.ReportCalls())
	byID := map[string]usage.Window{}
	all, err := e.ledger.ListWindows(ctx, ledger.WindowQuery{})
	require.NoError(t, err)
	for _, w := range all {
		byID[w.OperationID] = w
	}
	assert.Equal(t, usage.StatePending, byID[ws[0].OperationID].State)
	assert.Equal(t, usage.StateRejected, byID[ws[1].OperationID].State)
	assert.Contains(t, byID[ws[1].OperationID].Reason, "bad operation")
	assert.Equal(t, usage.StateReported, byID[ws[2].OperationID].State)

	e.clock.Advance(time.Minute)
	e.flush()
	all, err = e.ledger.ListWindows(ctx, ledger.WindowQuery{OperationID: ws[0].OperationID})
	require.NoError(t, err)
	assert.Equal(t, usage.StateReported, all[0].State)
	assert.Equal(t, 2, all[0].Attempts)
	assert.Len(t, e.srv.Reports(), 2, "the rejected operation is not resent")
	assert.Empty(t, e.srv.Violations())
	backlog, err := e.rep.Backlog(ctx)
	require.NoError(t, err)
	require.Len(t, backlog, 1)
	assert.Equal(t, ws[1].OperationID, backlog[0].OperationID)

	// An operator can retry it.
	require.NoError(t, e.rep.Retry(ctx, ws[1].OperationID))
	e.flush()
	assert.Len(t, e.srv.Reports(), 3)
}

// sealedWindows seals what is closed with a reporter that cannot reach
// Service Control (so nothing is sent) and returns the windows sealed.
func sealedWindows(t *testing.T, e *env) []usage.Window {
	t.Helper()
	e.srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodServicesCheck, Kind: marketplacetest.FaultStatus, Status: 503, Times: -1})
	e.flush()
	e.srv.ClearFaults()
	ws, err := e.ledger.ListWindows(context.Background(), ledger.WindowQuery{})
	require.NoError(t, err)
	e.clock.Advance(time.Minute) // past the check-failure backoff
	return ws
}

// TestUnknownWindowExpiresAtDeadline: a window whose report outcome stays
// unknown is resent with the same id until its deadline, then surfaced.
func TestUnknownWindowExpiresAtDeadline(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var alerts []usage.DeadlineAlert
	e := newEnv(t, nil, withDeadlineAlert(20*time.Minute, func(_ context.Context, a usage.DeadlineAlert) {
		mu.Lock()
		alerts = append(alerts, a)
		mu.Unlock()
	}))
	ctx := context.Background()
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 5, e.clock.Now().Add(time.Minute), nil)
	e.clock.Advance(time.Hour)
	e.srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodServicesReport, Kind: marketplacetest.FaultStatus, Status: 503, Times: -1})
	for range 20 {
		e.flush()
		e.clock.Advance(5 * time.Minute)
	}
	e.flush()
	backlog, err := e.rep.Backlog(ctx)
	require.NoError(t, err)
	require.Len(t, backlog, 2) // the window and the next hour's zero window
	w := backlog[0]
	assert.Equal(t, usage.StateExpired, w.State)
	assert.Greater(t, w.Attempts, 3)
	assert.Len(t, e.srv.Reports(), 0, "no report got through")
	mu.Lock()
	var near, missed bool
	for _, a := range alerts {
		if a.Window.OperationID == w.OperationID {
			near = near || !a.Missed
			missed = missed || a.Missed
		}
	}
	mu.Unlock()
	assert.True(t, near, "alerted before the deadline")
	assert.True(t, missed, "alerted after the deadline")

	// The operator reconciles and settles it.
	e.srv.ClearFaults()
	require.NoError(t, e.rep.Settle(ctx, w.OperationID, usage.StateRejected, "not in the billing export"))
	ws, err := e.ledger.ListWindows(ctx, ledger.WindowQuery{OperationID: w.OperationID})
	require.NoError(t, err)
	assert.Equal(t, usage.StateRejected, ws[0].State)
}

// A check answers for a consumer (a project), which several entitlements
// can share: a stop-serving code stops every one of them, and each is
// served again when it clears.
func TestStopServingAppliesToEveryEntitlementOfTheConsumer(t *testing.T) {
	t.Parallel()
	var log servingLog
	e := newEnv(t, nil, withServingChanged(log.add))
	ctx := context.Background()
	first := e.consumer(time.Time{}, time.Time{})
	id, err := e.srv.Purchase(ctx, marketplacetest.PurchaseParams{UsageBased: true, AutoApprove: true})
	require.NoError(t, err)
	second := usage.Consumer{EntitlementID: id, UsageReportingID: first.UsageReportingID}
	require.NoError(t, e.rep.Register(ctx, second))
	e.srv.SetCheckError(first.UsageReportingID, "BILLING_DISABLED")
	e.clock.Advance(time.Hour + time.Minute)
	e.flush()
	for _, c := range []usage.Consumer{first, second} {
		st, err := e.rep.Serving(ctx, c.EntitlementID)
		require.NoError(t, err)
		assert.False(t, st.Serving, c.EntitlementID)
		assert.Equal(t, "BILLING_DISABLED", st.Block.Code, c.EntitlementID)
	}
	require.Len(t, log.list(), 2)
	blocked, err := e.rep.Consumers(ctx, usage.ConsumerQuery{BlockedOnly: true})
	require.NoError(t, err)
	require.Len(t, blocked, 2, "Consumers lists both blocked consumers")
	assert.Less(t, blocked[0].EntitlementID, blocked[1].EntitlementID, "sorted by entitlement id")
	for _, st := range blocked {
		assert.Equal(t, "BILLING_DISABLED", st.Block.Code, st.EntitlementID)
	}

	e.srv.ClearCheckError(first.UsageReportingID)
	e.clock.Advance(defaultCheckCacheTTL)
	e.flush()
	for _, c := range []usage.Consumer{first, second} {
		st, err := e.rep.Serving(ctx, c.EntitlementID)
		require.NoError(t, err)
		assert.True(t, st.Serving, c.EntitlementID)
	}
	require.Len(t, log.list(), 4)
	blocked, err = e.rep.Consumers(ctx, usage.ConsumerQuery{BlockedOnly: true})
	require.NoError(t, err)
	assert.Empty(t, blocked, "no consumer blocked once the check passes")
	all, err := e.rep.Consumers(ctx, usage.ConsumerQuery{})
	require.NoError(t, err)
	assert.Len(t, all, 2)
}

// A reportError that refuses an operation before any work for want of
// permission is retried, as the same refusal of the whole call is: it is
// not rejected for good while IAM catches up.
func TestReportErrorPermissionIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	var cs []usage.Consumer
	for range 2 {
		c := e.consumer(time.Time{}, time.Time{})
		cs = append(cs, c)
		e.record(c, "requests", 4, e.clock.Now().Add(time.Minute), nil)
	}
	e.clock.Advance(time.Hour)
	ws := sealedWindows(t, e)
	require.Len(t, ws, 2)
	e.srv.InjectReportError(ws[0].OperationID, 7, "Permission 'servicemanagement.services.report' denied")
	e.srv.InjectReportError(ws[1].OperationID, 16, "Request had invalid authentication credentials")
	e.flush()
	for _, w := range ws {
		got, err := e.ledger.ListWindows(ctx, ledger.WindowQuery{OperationID: w.OperationID})
		require.NoError(t, err)
		assert.Equal(t, usage.StatePending, got[0].State, got[0].Reason)
	}
	e.clock.Advance(time.Minute)
	e.flush()
	for _, c := range cs {
		assert.Equal(t, int64(4), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
	}
	assert.Empty(t, e.srv.Violations())
}

// After downtime the windows sealed in catch-up are past their deadline
// already; one ambiguous failure does not expire them: they are resent
// with the same ids.
func TestCatchUpWindowSurvivesOneFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 11, t0.Add(10*time.Minute), nil)
	e.clock.Advance(3*time.Hour + 2*time.Minute) // the reporter was down
	e.srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodServicesReport, Kind: marketplacetest.FaultStatus, Status: 503})
	e.flush()
	e.clock.Advance(time.Minute)
	e.flush()
	assert.Equal(t, int64(11), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
	assert.Empty(t, e.open())
	assert.Empty(t, e.srv.Violations())
}
