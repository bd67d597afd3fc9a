package marketplace_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/usage"
)

// A usage-based entitlement is registered with the usage reporter when it
// becomes usable, and closed when it is cancelled: usage after the
// cancellation is refused.
func TestUsageReporterRegistration(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	store := env.store.(*memstore.Store)
	rep, err := usage.New(env.ctx, env.srv.ServiceName(), store, &usage.Config{
		Runtime: gcpmarketplace.Runtime{Clock: env.srv.Clock().Now},
		Metrics: map[string]usage.MetricKind{env.srv.ServiceName() + "/requests": usage.Int64},
	}, env.srv.ClientOptions()...)
	require.NoError(t, err)
	proc, err := marketplace.New(store, env.client, env.rec.handler(),
		&marketplace.Config{Runtime: gcpmarketplace.Runtime{Clock: env.srv.Clock().Now}, Usage: rep})
	require.NoError(t, err)
	env.proc = proc

	acct, ent := env.purchase(marketplacetest.PurchaseParams{UsageBased: true})
	record := func() error {
		return rep.Record(env.ctx, usage.Record{EntitlementID: ent, Metric: "requests", Int64: 1, Time: env.srv.Clock().Now()})
	}
	require.ErrorIs(t, record(), usage.ErrUnknownConsumer, "not registered before it is usable")
	env.drain()
	env.signup(acct)
	env.drain()
	env.srv.Clock().Advance(time.Minute)
	require.NoError(t, record())

	require.NoError(t, env.srv.Cancel(env.ctx, ent, true))
	env.drain()
	env.srv.Clock().Advance(time.Minute)
	require.ErrorIs(t, record(), usage.ErrAfterEnd)
}

// OnEntitlementActive may record usage right away: the processor registers
// the entitlement with the usage reporter before it runs the callbacks.
func TestUsageRecordedInOnEntitlementActive(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	store := env.store.(*memstore.Store)
	rep, err := usage.New(env.ctx, env.srv.ServiceName(), store, &usage.Config{
		Runtime: gcpmarketplace.Runtime{Clock: env.srv.Clock().Now},
		Metrics: map[string]usage.MetricKind{env.srv.ServiceName() + "/requests": usage.Int64},
	}, env.srv.ClientOptions()...)
	require.NoError(t, err)
	var recorded atomic.Int32
	env.rec.setFail(func(ctx context.Context, c *marketplace.Change) error {
		if c.Type != events.TypeEntitlementActive || c.Entitlement.UsageReportingID == "" {
			return nil
		}
		if err := rep.Record(ctx, usage.Record{EntitlementID: c.Entitlement.ID, Metric: "requests", Int64: 1}); err != nil {
			return err
		}
		recorded.Add(1)
		return nil
	})
	proc, err := marketplace.New(store, env.client, env.rec.handler(),
		&marketplace.Config{Runtime: gcpmarketplace.Runtime{Clock: env.srv.Clock().Now}, Usage: rep})
	require.NoError(t, err)
	env.proc = proc

	// The customer signed up with a first purchase; a second, usage-based
	// one is approved as soon as its message arrives: its registration and
	// OnEntitlementActive come from the same message.
	acct, _ := env.purchase(marketplacetest.PurchaseParams{})
	env.drain()
	env.signup(acct)
	env.drain()
	// The emulator's clock stands still unless told: let the second
	// purchase happen a minute after the first one.
	env.srv.Clock().Advance(time.Minute)
	ent, err := env.srv.Purchase(env.ctx, marketplacetest.PurchaseParams{AccountID: acct, UsageBased: true})
	require.NoError(t, err)
	env.drain()
	require.Equal(t, int32(1), recorded.Load())
	assert.Equal(t, []events.Type{events.TypeEntitlementCreationRequested, events.TypeEntitlementActive}, env.rec.types(ent))
}
