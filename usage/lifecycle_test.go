package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// TestCloseFlushes: Close seals and reports the windows closed by now, as
// the last act of a shutdown.
func TestCloseFlushes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 4, e.clock.Now(), nil)
	e.clock.Advance(time.Hour + 2*time.Minute)
	require.Empty(t, e.srv.Reports())

	require.NoError(t, e.rep.Close(context.Background()))
	assert.Equal(t, int64(4), e.srv.BilledTotal(c.UsageReportingID, metricRequests))
	require.NoError(t, e.rep.Close(context.Background()), "closing again")
}

// TestCloseStopsRun: Run returns nil once Close is called, Close's final
// flush still reports, and Run after Close returns at once.
func TestCloseStopsRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 9, e.clock.Now(), nil)

	done := make(chan error, 1)
	go func() { done <- e.rep.Run(context.Background()) }() // no deadline: only Close ends it
	e.clock.Advance(time.Hour + 2*time.Minute)
	require.NoError(t, e.rep.Close(context.Background()))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	assert.Equal(t, int64(9), e.srv.BilledTotal(c.UsageReportingID, metricRequests), "billed once, by Run or by Close")
	assert.Empty(t, e.srv.Resends())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.rep.Run(ctx), "Run after Close")
	require.NoError(t, ctx.Err(), "Run after Close returned at once")
}

// TestCloseGivesUpWithCtx: Close returns ctx's error when the flush Run is
// in does not finish in time.
func TestCloseGivesUpWithCtx(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	stall := func() {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}
	e := newEnv(t, nil, withRPCTimeout(time.Minute))
	c := e.consumer(time.Time{}, time.Time{})
	e.record(c, "requests", 1, e.clock.Now(), nil)
	e.clock.Advance(time.Hour + 2*time.Minute)
	r := e.newReporter(e.ledger, usage.WithBeforeSendHook(stall))
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	<-entered // Run is in its flush, about to send

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, r.Close(ctx), context.DeadlineExceeded)
	close(release)
	require.NoError(t, <-done)
}
