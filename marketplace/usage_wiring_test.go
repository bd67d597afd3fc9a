package marketplace_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
	rep, err := usage.New(env.ctx, env.srv.ServiceName(), store,
		usage.WithMetric(env.srv.ServiceName()+"/requests", usage.Int64),
		usage.WithClock(env.srv.Clock().Now), usage.WithClientOptions(env.srv.ClientOptions()...))
	require.NoError(t, err)
	proc, err := marketplace.New(store, env.client, env.rec.handler(),
		marketplace.WithClock(env.srv.Clock().Now), marketplace.WithUsageReporter(rep))
	require.NoError(t, err)
	env.proc = proc

	acct, ent := env.purchase(marketplacetest.PurchaseParams{UsageBased: true})
	record := func() error {
		return rep.Record(env.ctx, usage.Record{EntitlementID: ent, Metric: "requests", Value: 1, Time: env.srv.Clock().Now()})
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
