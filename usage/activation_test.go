package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// A consumer activated and registered mid-hour, without Start: its first
// window begins at the registration, not at the top of the hour, which
// Service Control would refuse whole as reaching back before the
// activation (issue 21).
func TestFirstWindowNotBeforeRegistration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	require.NoError(t, e.clock.Set(e.clock.Now().Truncate(time.Hour).Add(20*time.Minute)))
	registered := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 9, registered.Add(5*time.Minute), nil)
	e.clock.Advance(time.Hour)
	e.drain(time.Minute, 5)
	assert.Equal(t, int64(9), billedOnce(e.srv, c.UsageReportingID, metricRequests))
	ops := e.srv.Reports()
	require.NotEmpty(t, ops)
	assert.True(t, ops[0].Start.Equal(registered), "first window starts at %v, want the registration %v", ops[0].Start, registered)
	assert.Empty(t, e.srv.Violations())
}

// A re-registration without Start keeps the Start registered: usage before
// it stays refused.
func TestRegisterWithoutStartKeepsStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	start := e.clock.Now().Add(10 * time.Minute)
	c := e.consumer(start, time.Time{})
	again := c
	again.Start = time.Time{}
	require.NoError(t, e.rep.Register(ctx, again))
	st, err := e.ledger.GetConsumer(ctx, c.EntitlementID)
	require.NoError(t, err)
	assert.True(t, st.Start.Equal(start), "start %v, want %v", st.Start, start)
	require.NoError(t, e.clock.Set(start.Add(time.Minute)))
	err = e.rep.Record(ctx, usage.Record{EntitlementID: c.EntitlementID, Metric: "requests", Int64: 1, Time: start.Add(-time.Minute)})
	assert.ErrorIs(t, err, usage.ErrBeforeStart)
}

// A cancellation learned after its windows were sealed blind, but before
// they were sent: the windows that run past the end are never sent (Service
// Control refuses them, straddling ones too), and nothing is owed back, so
// no BilledAfterEnd.
func TestLateEndRejectsUnsentWindows(t *testing.T) {
	t.Parallel()
	var al alerts
	e := newEnv(t, nil, al.options()...)
	ctx := context.Background()
	t0 := e.clock.Now()
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 10, t0.Add(10*time.Minute), nil)
	require.NoError(t, e.clock.Set(t0.Add(20*time.Minute)))
	require.NoError(t, e.srv.Cancel(ctx, c.EntitlementID, true))
	end, ok := e.srv.ConsumerLife(c.UsageReportingID)
	require.True(t, ok)
	e.record(c, "requests", 400, t0.Add(30*time.Minute), nil) // the Reporter does not know of the end yet
	require.NoError(t, e.clock.Set(t0.Add(62*time.Minute)))
	ws := sealedWindows(t, e) // sealed blind (no confirmer); not sent: the checks failed
	require.Len(t, ws, 1)

	e.cancel(&c, end.End)
	e.drain(time.Minute, 5)
	assert.Zero(t, e.srv.BilledTotal(c.UsageReportingID, metricRequests), "nothing billed past the end")
	got := e.windows(c)
	require.Len(t, got, 1)
	assert.Equal(t, usage.StateRejected, got[0].State, got[0].Reason)
	_, billed := al.snapshot()
	assert.Empty(t, billed, "nothing was billed, nothing is owed")
}
