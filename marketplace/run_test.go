package marketplace_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// Run without a subscription (push): it reconciles at start, then waits;
// Close stops it and refuses later work.
func TestRunReconcilesAndStopsOnClose(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	_, ent := env.purchase(marketplacetest.PurchaseParams{}) // no message processed
	done := make(chan error, 1)
	go func() { done <- env.proc.Run(env.ctx, nil) }()
	require.Eventually(t, func() bool {
		_, ok := env.localEntitlement(ent)
		return ok
	}, 10*time.Second, 10*time.Millisecond, "Run reconciles at start")

	require.NoError(t, env.proc.Close())
	select {
	case err := <-done:
		require.NoError(t, err)
	default:
		t.Fatal("Close returned before Run")
	}
	require.ErrorIs(t, env.proc.HandleMessage(env.ctx, rawMessage("m", "{}")), marketplace.ErrClosed)
	require.ErrorIs(t, env.proc.Run(env.ctx, nil), marketplace.ErrClosed)
	require.NoError(t, env.proc.Close(), "a second Close")
	_, err := env.proc.Poison(env.ctx, 0)
	require.NoError(t, err, "operator reads work after Close")
}

func TestRunStopsWithItsContext(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	ctx, cancel := context.WithCancel(env.ctx)
	done := make(chan error, 1)
	go func() { done <- env.proc.Run(ctx, nil) }()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

// WaitIdle waits for the messages in flight, whatever the transport.
func TestWaitIdle(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	require.NoError(t, env.proc.WaitIdle(env.ctx), "idle from the start")
	entered, release := make(chan struct{}, 10), make(chan struct{})
	env.rec.setFail(func(ctx context.Context, c *marketplace.Change) error {
		entered <- struct{}{}
		<-release
		return nil
	})
	env.purchase(marketplacetest.PurchaseParams{})
	msgs := env.newMessages()
	handled := make(chan error, 1)
	go func() { handled <- env.proc.HandleMessage(env.ctx, msgs[0]) }()
	<-entered

	short, cancel := context.WithTimeout(env.ctx, 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, env.proc.WaitIdle(short), context.DeadlineExceeded, "a callback is running")
	close(release)
	ctx, cancel2 := context.WithTimeout(env.ctx, 10*time.Second)
	defer cancel2()
	require.NoError(t, env.proc.WaitIdle(ctx))
	select {
	case err := <-handled:
		require.NoError(t, err, "WaitIdle returned after HandleMessage")
	default:
		t.Fatal("WaitIdle returned while the message was in flight")
	}
}

// Two Processors share one MeterProvider; Close unregisters the gauges of
// the one closed, so its closed Store is not read again.
func TestProcessorsShareAMeterProvider(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	cfg := marketplace.Config{Runtime: gcpmarketplace.Runtime{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}}
	first, second := newProcEnv(t, withProc(cfg)), newProcEnv(t, withProc(cfg))
	first.purchase(marketplacetest.PurchaseParams{})
	first.drain() // parked: its account has not signed up

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))

	require.NoError(t, first.proc.Close())
	require.NoError(t, first.store.Close())
	rm = metricdata.ResourceMetrics{}
	require.NoError(t, reader.Collect(context.Background(), &rm), "the closed processor's store is not read")
	assert.Equal(t, int64(0), parkedGauge(t, rm), "the open processor's store, which has nothing parked")
	_ = second
}

func parkedGauge(t *testing.T, rm metricdata.ResourceMetrics) int64 {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == "gcpmarketplace.entitlements.parked" {
				require.Len(t, g.DataPoints, 1)
				return g.DataPoints[0].Value
			}
		}
	}
	t.Fatal("no parked gauge")
	return 0
}

// A message set aside as poison is listed, and redriven once its cause is
// fixed: it then leaves the list.
func TestPoisonRedrive(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	env.rec.setFail(func(ctx context.Context, c *marketplace.Change) error {
		if c.Type == tCreationRequested {
			return events.Permanent(errors.New("tenant missing"))
		}
		return nil
	})
	_, ent := env.purchase(marketplacetest.PurchaseParams{})
	env.drain()
	ps := env.poison()
	require.Len(t, ps, 1)
	assert.Contains(t, ps[0].Reason, "tenant missing")
	require.NotEmpty(t, ps[0].EventID)
	_, ok := env.localEntitlement(ent)
	require.False(t, ok, "nothing committed")

	err := env.proc.Redrive(env.ctx, ps[0].EventID)
	require.ErrorContains(t, err, "tenant missing", "the cause is not fixed")
	require.Len(t, env.poison(), 1, "still poison")

	env.rec.setFail(nil)
	require.NoError(t, env.proc.Redrive(env.ctx, ps[0].MessageID))
	assert.Empty(t, env.poison())
	assert.Equal(t, []events.Type{tCreationRequested}, env.rec.types(ent))
	parked, err := env.proc.Parked(env.ctx)
	require.NoError(t, err)
	require.Len(t, parked, 1)
	assert.Equal(t, ent, parked[0].ID)
	require.ErrorIs(t, env.proc.Redrive(env.ctx, ps[0].EventID), marketplace.ErrNotFound)

	env.drain() // nothing new: the redriven event stays processed
	assert.Equal(t, []events.Type{tCreationRequested}, env.rec.types(ent))
}

func TestRedriveUndecodable(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	require.NoError(t, env.proc.HandleMessage(env.ctx, rawMessage("bad", "{")))
	require.ErrorContains(t, env.proc.Redrive(env.ctx, "bad"), "still undecodable")
	require.Len(t, env.poison(), 1)
	require.ErrorIs(t, env.proc.Redrive(env.ctx, ""), marketplace.ErrInvalid)
}

func TestPing(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	require.NoError(t, env.proc.Ping(env.ctx))
	require.NoError(t, env.store.Close())
	require.ErrorIs(t, env.proc.Ping(env.ctx), marketplace.ErrClosed, "the store is closed")
}

// An entitlement that cannot be settled at sign-up is reported in the
// result, not as an error of the sign-up, which succeeded.
func TestCompleteSignupPartialSuccessIsNotAnError(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	acct, ent := env.purchase(marketplacetest.PurchaseParams{})
	env.drain() // parked
	env.rec.setFail(func(ctx context.Context, c *marketplace.Change) error {
		if c.Type == tActive {
			return errors.New("provisioning is down")
		}
		return nil
	})
	res, err := env.proc.CompleteSignup(env.ctx, marketplace.SignupParams{AccountID: acct, VendorUserID: "tenant"})
	require.NoError(t, err)
	assert.True(t, res.Account.SignupApproved())
	require.Len(t, res.Entitlements, 1)
	assert.Equal(t, ent, res.Entitlements[0].Resource.ID)
	require.ErrorContains(t, res.Entitlements[0].Err, "provisioning is down")
	assert.Empty(t, res.Entitlements[0].Outcomes)
	a, ok := env.localAccount(acct)
	require.True(t, ok)
	assert.Equal(t, "tenant", a.VendorUserID, "linked")
}
