package marketplace_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// Reconcile heals local state after notifications were missed, approves
// what should have been approved, and reports what it changed; the missed
// notifications arriving afterwards change nothing.
func TestReconcile(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	a1, e1 := env.purchase(marketplacetest.PurchaseParams{})
	a2, e2 := env.purchase(marketplacetest.PurchaseParams{})
	a3, e3 := env.purchase(marketplacetest.PurchaseParams{})
	// Signed up outside this processor (another replica, a support tool).
	_, err := env.client.ApproveAccountSignup(env.ctx, a1)
	require.NoError(t, err)

	rep, err := env.proc.Reconcile(env.ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{a1, a2, a3}, rep.AccountsAdded)
	assert.ElementsMatch(t, []string{e1, e2, e3}, rep.EntitlementsAdded)
	assert.Equal(t, []string{e1}, rep.Approved)
	assert.ElementsMatch(t, []string{e2, e3}, rep.Parked)
	assert.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(e1))
	assert.Equal(t, []events.Type{tCreationRequested}, env.rec.types(e2))
	env.requireInSync()

	rep, err = env.proc.Reconcile(env.ctx)
	require.NoError(t, err)
	assert.False(t, rep.Changed(), "nothing left to do: %+v", rep)

	env.signup(a2)
	require.NoError(t, env.srv.Cancel(env.ctx, e1, true))
	require.NoError(t, env.srv.DeleteAccount(env.ctx, a3))
	rep, err = env.proc.Reconcile(env.ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{a3}, rep.AccountsPurged)
	assert.Equal(t, []string{e1}, rep.EntitlementsUpdated)
	assert.Equal(t, []string{e3}, rep.EntitlementsDeleted)
	env.requireInSync()

	env.drain() // every notification, late
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tCancelled}, env.rec.types(e1))
	assert.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(e2))
	assert.Equal(t, []events.Type{tCreationRequested, tCancelled, tDeleted}, env.rec.types(e3))
	assert.Equal(t, []events.Type{tAccountActive, tAccountDeleted}, env.rec.types(a3))
	for _, a := range []string{a1, a2} {
		assert.Equal(t, []events.Type{tAccountActive}, env.rec.types(a))
	}
	env.requireInSync()
}

func TestReconcileWithManualPolicyQueues(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t, withProc(marketplace.WithPolicy(marketplace.ManualApproval("soon"))))
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	_, err = env.client.ApproveAccountSignup(env.ctx, acct)
	require.NoError(t, err)
	_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct})
	rep, err := env.proc.Reconcile(env.ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{ent}, rep.Queued)
	rep, err = env.proc.Reconcile(env.ctx)
	require.NoError(t, err)
	assert.Empty(t, rep.Queued, "queued once")
	q, err := env.proc.PendingApprovals(env.ctx)
	require.NoError(t, err)
	require.Len(t, q, 1)
}
