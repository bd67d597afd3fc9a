package marketplace_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace"
	"github.com/gcpmarketplace/gcpmarketplace/events"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/marketplace/memstore"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

// A database holding one Marketplace's customers, given to a processor of
// another (a new emulator, as a restarted `saas-backend -emulator` had, or
// another provider), used to be reconciled: every customer was unknown
// there, so OnAccountDeleted ran for each and their state was purged. The
// processor now refuses the store before it changes anything.
func TestForeignStoreIsRefusedBeforeAnyPurge(t *testing.T) {
	store := memstore.New()
	first := newProcEnv(t, withStore(store))
	accountID, entID := first.purchase(marketplacetest.PurchaseParams{})
	first.drain()
	first.signup(accountID)
	first.drain()
	_, ok := first.localAccount(accountID)
	require.True(t, ok)

	// The same Marketplace again (a restart): accepted, nothing purged.
	again, err := marketplace.New(store, first.client, (&procRecorder{}).handler(), &marketplace.Config{Runtime: gcpmarketplace.Runtime{Clock: first.srv.Clock().Now}})
	require.NoError(t, err)
	rep, err := again.Reconcile(context.Background())
	require.NoError(t, err)
	assert.Empty(t, reported(rep, events.ResourceAccount, marketplace.OutcomeDeleted))

	// A new emulator: same provider id, another endpoint.
	second := newProcEnv(t, withStore(store))
	// Another provider at the first emulator's endpoint.
	otherClient, err := procurement.NewClient(context.Background(), "other-provider", first.srv.ClientOptions()...)
	require.NoError(t, err)
	otherRec := &procRecorder{}
	other, err := marketplace.New(store, otherClient, otherRec.handler(), nil)
	require.NoError(t, err)

	for name, proc := range map[string]*marketplace.Processor{"another endpoint": second.proc, "another provider": other} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rep, err := proc.Reconcile(ctx)
			require.ErrorIs(t, err, marketplace.ErrForeignStore)
			assert.False(t, rep.Changed(), "Reconcile changed %+v", rep)

			_, err = proc.CompleteSignup(ctx, marketplace.SignupParams{AccountID: accountID, VendorUserID: "t"})
			assert.ErrorIs(t, err, marketplace.ErrForeignStore)
			assert.ErrorIs(t, proc.Approve(ctx, entID), marketplace.ErrForeignStore)
			assert.ErrorIs(t, proc.Reject(ctx, entID, "no"), marketplace.ErrForeignStore)
			msg := marketplace.Message{ID: "m1", Data: []byte(`{"eventId":"ev-x","eventType":"ACCOUNT_DELETED","account":{"id":"` + accountID + `"}}`)}
			assert.ErrorIs(t, proc.HandleMessage(ctx, msg), marketplace.ErrForeignStore, "not acknowledged")
		})
	}
	assert.Empty(t, second.rec.all(), "no callback ran")
	assert.Empty(t, otherRec.all(), "no callback ran")
	_, ok = first.localAccount(accountID)
	assert.True(t, ok, "the account was not purged")
	_, ok = first.localEntitlement(entID)
	assert.True(t, ok, "the entitlement was not purged")
}

// A Store without OriginRecorder still works (with a warning): the check is
// the store's to offer.
func TestStoreWithoutOriginRecorderIsAccepted(t *testing.T) {
	type plainStore struct{ marketplace.Store } // hides RecordOrigin
	env := newProcEnv(t, withStore(plainStore{memstore.New()}))
	_, err := env.proc.Reconcile(context.Background())
	require.NoError(t, err)
}
