package marketplace_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
)

// reported lists the ids of the resources of kind with outcome o in rep.
func reported(rep marketplace.ReconcileReport, kind events.ResourceKind, o marketplace.Outcome) []string {
	var ids []string
	for _, r := range rep.Results {
		if r.Resource.Kind == kind && slices.Contains(r.Outcomes, o) {
			ids = append(ids, r.Resource.ID)
		}
	}
	return ids
}

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
	assert.ElementsMatch(t, []string{a1, a2, a3}, reported(rep, events.ResourceAccount, marketplace.OutcomeAdded))
	assert.ElementsMatch(t, []string{e1, e2, e3}, reported(rep, events.ResourceEntitlement, marketplace.OutcomeAdded))
	assert.Equal(t, []string{e1}, reported(rep, events.ResourceEntitlement, marketplace.OutcomeApproved))
	assert.ElementsMatch(t, []string{e2, e3}, reported(rep, events.ResourceEntitlement, marketplace.OutcomeParked))
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
	assert.Equal(t, []string{a3}, reported(rep, events.ResourceAccount, marketplace.OutcomeDeleted))
	assert.Equal(t, []string{e1}, reported(rep, events.ResourceEntitlement, marketplace.OutcomeUpdated))
	assert.Equal(t, []string{e3}, reported(rep, events.ResourceEntitlement, marketplace.OutcomeDeleted))
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
	env := newProcEnv(t, withProc(marketplace.Config{Policy: marketplace.ManualApproval("soon")}))
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	_, err = env.client.ApproveAccountSignup(env.ctx, acct)
	require.NoError(t, err)
	_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct})
	rep, err := env.proc.Reconcile(env.ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{ent}, reported(rep, events.ResourceEntitlement, marketplace.OutcomeQueued))
	rep, err = env.proc.Reconcile(env.ctx)
	require.NoError(t, err)
	assert.Empty(t, reported(rep, events.ResourceEntitlement, marketplace.OutcomeQueued), "queued once")
	q, err := env.proc.PendingApprovals(env.ctx)
	require.NoError(t, err)
	require.Len(t, q, 1)
}

// A message settled while Reconcile walks its listing makes the listed
// snapshot older than the stored state: Reconcile re-reads instead of
// acting on it, so the callbacks do not fire twice and the stored state
// does not go back.
func TestReconcileIgnoresSnapshotOlderThanStored(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	acct, first := env.purchase(marketplacetest.PurchaseParams{})
	second, err := env.srv.Purchase(env.ctx, marketplacetest.PurchaseParams{AccountID: acct})
	require.NoError(t, err)
	// Signed up at Google; this processor has not been told.
	_, err = env.client.ApproveAccountSignup(env.ctx, acct)
	require.NoError(t, err)
	var msg marketplace.Message
	for _, p := range env.srv.Published() {
		if p.EntitlementID == second && p.EventType == string(events.TypeEntitlementCreationRequested) {
			msg = marketplace.Message{ID: "second", Data: p.Data}
		}
	}
	require.NotNil(t, msg.Data)
	var once sync.Once
	env.rec.setFail(func(_ context.Context, c *marketplace.Change) error {
		if c.Type == events.TypeEntitlementActive && c.Entitlement.ID == first {
			// Receive, running beside Reconcile, settles the second
			// entitlement after Reconcile listed it.
			once.Do(func() { require.NoError(t, env.proc.HandleMessage(context.Background(), msg)) })
		}
		return nil
	})
	rep, err := env.proc.Reconcile(env.ctx)
	require.NoError(t, err)
	assert.Equal(t, []events.Type{events.TypeEntitlementCreationRequested, events.TypeEntitlementActive}, env.rec.types(second))
	assert.NotContains(t, reported(rep, events.ResourceEntitlement, marketplace.OutcomeApproved), second, "approved by the message, not by Reconcile")
	env.requireInSync()
}

// The same for accounts: a sign-up completed while Reconcile walks its
// listing is not taken back by the listed snapshot from before it.
func TestReconcileKeepsSignupCompletedMeanwhile(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	first, err := env.srv.CreateAccount(env.ctx) // listed first, new here
	require.NoError(t, err)
	second, ent := env.purchase(marketplacetest.PurchaseParams{})
	// Only the second account's messages are delivered: it is known here,
	// its entitlement parked until sign-up.
	for _, p := range env.srv.Published() {
		if p.AccountID == second {
			require.NoError(t, env.proc.HandleMessage(env.ctx, marketplace.Message{ID: p.EventID, Data: p.Data}))
		}
	}
	local, ok := env.localEntitlement(ent)
	require.True(t, ok)
	require.True(t, local.Parked)
	var once sync.Once
	env.rec.setFail(func(_ context.Context, c *marketplace.Change) error {
		if c.Type == events.TypeAccountActive && c.Account.ID == first {
			// The customer completes sign-up after Reconcile listed the
			// accounts.
			once.Do(func() { env.signup(second) })
		}
		return nil
	})
	_, err = env.proc.Reconcile(env.ctx)
	require.NoError(t, err)
	acct, ok := env.localAccount(second)
	require.True(t, ok)
	assert.True(t, acct.SignupApproved, "the sign-up stored meanwhile stays")
	assert.Equal(t, "tenant-"+second[:8], acct.VendorUserID)
	env.requireInSync()
}
