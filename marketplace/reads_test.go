package marketplace_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// The operator's reads see what the processor stored, and the history
// follows an entitlement from its purchase to its account's purge.
func TestReadsAndHistory(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	acct, ent := env.purchase(marketplacetest.PurchaseParams{})
	env.drain()

	parked, err := env.proc.Entitlements(env.ctx, marketplace.EntitlementQuery{ParkedOnly: true})
	require.NoError(t, err)
	require.Len(t, parked, 1)
	assert.Equal(t, ent, parked[0].ID)
	assert.Equal(t, acct, parked[0].AccountID)
	_, err = env.proc.Account(env.ctx, "no-such")
	require.ErrorIs(t, err, marketplace.ErrNotFound)

	env.signup(acct)
	env.drain()
	a, err := env.proc.Account(env.ctx, acct)
	require.NoError(t, err)
	assert.Equal(t, "tenant-"+acct[:8], a.VendorUserID)
	all, err := env.proc.Accounts(env.ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)
	e, err := env.proc.Entitlement(env.ctx, ent)
	require.NoError(t, err)
	assert.Equal(t, procurement.EntitlementActive, e.State)
	_, err = env.proc.Entitlement(env.ctx, "no-such")
	require.ErrorIs(t, err, marketplace.ErrNotFound)

	h, err := env.proc.History(env.ctx, marketplace.HistoryQuery{EntitlementID: ent})
	require.NoError(t, err)
	require.Len(t, h, 2)
	assert.Equal(t, events.TypeEntitlementCreationRequested, h[0].Change)
	assert.Equal(t, procurement.EntitlementState(""), h[0].FromState)
	assert.Equal(t, procurement.EntitlementActivationRequested, h[0].ToState)
	assert.Equal(t, "message", h[0].Source)
	assert.NotEmpty(t, h[0].EventID)
	assert.Equal(t, events.TypeEntitlementActive, h[1].Change)
	assert.Equal(t, procurement.EntitlementActive, h[1].ToState)
	assert.Equal(t, "signup", h[1].Source)
	assert.Equal(t, acct, h[1].AccountID)
	assert.Less(t, h[0].Seq, h[1].Seq)
	last, err := env.proc.History(env.ctx, marketplace.HistoryQuery{AccountID: acct, Limit: 1})
	require.NoError(t, err)
	require.Len(t, last, 1)
	assert.Equal(t, h[1].Seq, last[0].Seq)

	// The customer leaves Google: the purge takes the history too.
	require.NoError(t, env.srv.DeleteAccount(env.ctx, acct))
	env.drain()
	h, err = env.proc.History(env.ctx, marketplace.HistoryQuery{AccountID: acct})
	require.NoError(t, err)
	assert.Empty(t, h, "history purged with the account")
}

func TestDismissAndHealth(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	assert.False(t, env.proc.Health().Running)
	require.NoError(t, env.proc.HandleMessage(env.ctx, rawMessage("m-bad", "not json")))
	h := env.proc.Health()
	assert.Equal(t, int64(1), h.Handled, "poison is acknowledged")
	assert.False(t, h.LastMessage.IsZero())

	require.Len(t, env.poison(), 1)
	require.ErrorIs(t, env.proc.Dismiss(env.ctx, "no-such"), marketplace.ErrNotFound)
	require.NoError(t, env.proc.Dismiss(env.ctx, "m-bad"))
	assert.Empty(t, env.poison())

	// A failing message is nacked and counted, with its error.
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	env.signup(acct)
	env.drain()
	env.rec.setFail(func(context.Context, *marketplace.Change) error { return errors.New("tenant store down") })
	_, err = env.srv.Purchase(env.ctx, marketplacetest.PurchaseParams{AccountID: acct})
	require.NoError(t, err)
	for _, m := range env.newMessages() {
		require.Error(t, env.proc.HandleMessage(env.ctx, m))
	}
	h = env.proc.Health()
	assert.Equal(t, int64(1), h.Failed)
	assert.Contains(t, h.LastError, "tenant store down")
	assert.False(t, h.LastErrorAt.Before(h.LastMessage))
	assert.Zero(t, h.InFlight)

	ctx, cancel := context.WithCancel(env.ctx)
	done := make(chan error, 1)
	go func() { done <- env.proc.Run(ctx, nil) }()
	require.Eventually(t, func() bool { return env.proc.Health().Running }, 5*time.Second, 10*time.Millisecond)
	h = env.proc.Health()
	assert.False(t, h.Pull)
	assert.False(t, h.Since.IsZero())
	assert.Empty(t, h.LastError, "a new Run starts without the last one's errors")
	cancel()
	require.NoError(t, <-done)
	assert.False(t, env.proc.Health().Running)
}
