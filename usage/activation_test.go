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
