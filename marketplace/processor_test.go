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

const (
	tAccountActive       = events.TypeAccountActive
	tAccountDeleted      = events.TypeAccountDeleted
	tCreationRequested   = events.TypeEntitlementCreationRequested
	tActive              = events.TypeEntitlementActive
	tPlanChangeRequested = events.TypeEntitlementPlanChangeRequested
	tPlanChanged         = events.TypeEntitlementPlanChanged
	tPlanChangeCancelled = events.TypeEntitlementPlanChangeCancelled
	tPendingCancellation = events.TypeEntitlementPendingCancellation
	tReverted            = events.TypeEntitlementCancellationReverted
	tCancelling          = events.TypeEntitlementCancelling
	tCancelled           = events.TypeEntitlementCancelled
	tDeleted             = events.TypeEntitlementDeleted
	tOfferAccepted       = events.TypeEntitlementOfferAccepted
	tRenewed             = events.TypeEntitlementRenewed
	tOfferEnded          = events.TypeEntitlementOfferEnded
)

func TestNewValidates(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	h := marketplace.HandlerDefaults{}
	_, err := marketplace.New(nil, env.client, h, nil)
	require.ErrorIs(t, err, marketplace.ErrInvalid)
	_, err = marketplace.New(env.store, nil, h, nil)
	require.ErrorIs(t, err, marketplace.ErrInvalid)
	_, err = marketplace.New(env.store, env.client, nil, nil)
	require.ErrorIs(t, err, marketplace.ErrInvalid)
}

// An entitlement requested before sign-up is parked (acknowledged, no
// approval call), then approved when the sign-up completes.
func TestEntitlementParkedUntilSignup(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	acct, ent := env.purchase(marketplacetest.PurchaseParams{Plan: "standard"})
	env.drain()

	local, ok := env.localEntitlement(ent)
	require.True(t, ok)
	assert.True(t, local.Parked, "parked until sign-up")
	assert.Equal(t, procurement.EntitlementActivationRequested, local.State)
	assert.Equal(t, 0, env.srv.Calls(marketplacetest.MethodEntitlementsApprove), "no approval before sign-up")
	assert.Equal(t, []events.Type{tAccountActive}, env.rec.types(acct))
	assert.Equal(t, []events.Type{tCreationRequested}, env.rec.types(ent))

	res := env.signup(acct)
	require.Len(t, res.Entitlements, 1)
	assert.Equal(t, marketplace.Result{Resource: events.Resource{Kind: events.ResourceEntitlement, ID: ent},
		Outcomes: []marketplace.Outcome{marketplace.OutcomeApproved}, State: procurement.EntitlementActive}, res.Entitlements[0])
	assert.True(t, res.Account.SignupApproved())
	env.drain() // ENTITLEMENT_ACTIVE: already seen

	assert.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(ent))
	local, _ = env.localEntitlement(ent)
	assert.False(t, local.Parked)
	a, ok := env.localAccount(acct)
	require.True(t, ok)
	assert.True(t, a.SignupApproved)
	assert.Equal(t, "tenant-"+acct[:8], a.VendorUserID)

	// Idempotent.
	res = env.signup(acct)
	assert.Empty(t, res.Entitlements)
	assert.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(ent))
	env.requireInSync()
}

// Sign-up may complete before the entitlement's message arrives: the API
// listing finds it.
func TestSignupBeforeEntitlementMessage(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	acct, ent := env.purchase(marketplacetest.PurchaseParams{})
	res := env.signup(acct) // no message processed yet
	require.Len(t, res.Entitlements, 1)
	assert.Equal(t, []marketplace.Outcome{marketplace.OutcomeApproved}, res.Entitlements[0].Outcomes)
	env.drain()
	assert.Equal(t, []events.Type{tAccountActive}, env.rec.types(acct))
	assert.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(ent))
	env.requireInSync()
}

func TestCompleteSignupRefusesAnotherVendorUser(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	env.signup(acct)
	_, err = env.proc.CompleteSignup(env.ctx, marketplace.SignupParams{AccountID: acct, VendorUserID: "someone-else"})
	require.ErrorIs(t, err, marketplace.ErrAccountLinked)
	linked := "tenant-" + acct[:8]
	assert.NotContains(t, err.Error(), linked, "the linked customer's id is not for the other user's eyes")
	local, ok := env.localAccount(acct)
	require.True(t, ok)
	assert.Equal(t, linked, local.VendorUserID)
	_, err = env.proc.CompleteSignup(env.ctx, marketplace.SignupParams{AccountID: acct})
	require.ErrorIs(t, err, marketplace.ErrInvalid)
}

// Another Google user of the same account signing up again for the same
// customer does not replace the google.user_identity stored first.
func TestCompleteSignupKeepsTheFirstUserIdentity(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	env.signup(acct) // UserIdentity "uid"
	_, err = env.proc.CompleteSignup(env.ctx, marketplace.SignupParams{AccountID: acct, VendorUserID: "tenant-" + acct[:8], UserIdentity: "other-google-user"})
	require.NoError(t, err)
	local, ok := env.localAccount(acct)
	require.True(t, ok)
	assert.Equal(t, "uid", local.UserIdentity)
}

func TestEntitlementAfterSignupApprovedAtOnce(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	env.drain()
	env.signup(acct)
	_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct, Plan: "pro"})
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(ent))
	got, _ := env.srv.Entitlement(ent)
	assert.Equal(t, marketplacetest.StateActive, got.State)
	env.requireInSync()
}

// activeEntitlement returns a signed-up account with an ACTIVE entitlement
// whose callbacks so far are recorded.
func activeEntitlement(t *testing.T, env *procEnv, p marketplacetest.PurchaseParams) (string, string) {
	t.Helper()
	acct, ent := env.purchase(p)
	env.drain()
	env.signup(acct)
	env.drain()
	require.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(ent))
	return acct, ent
}

func TestPlanChangeApproved(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	_, ent := activeEntitlement(t, env, marketplacetest.PurchaseParams{Plan: "standard"})
	require.NoError(t, env.srv.RequestPlanChange(env.ctx, ent, "premium"))
	env.drain()
	calls := env.rec.all()
	last := calls[len(calls)-1]
	assert.Equal(t, procCall{Type: tPlanChanged, Resource: ent, EventID: last.EventID, State: procurement.EntitlementActive, Plan: "premium"}, last)
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tPlanChangeRequested, tPlanChanged}, env.rec.types(ent))
	local, _ := env.localEntitlement(ent)
	assert.Equal(t, "premium", local.Plan)
	env.requireInSync()
}

// A private offer that replaces the active one may keep the plan: once
// approved it is a change (OnEntitlementPlanChanged, with the new offer),
// not a change the customer withdrew.
func TestOfferReplacedOnTheSamePlan(t *testing.T) {
	t.Parallel()
	const first = "projects/123/services/svc/privateOffers/first"
	const second = "projects/123/services/svc/privateOffers/second"
	env := newProcEnv(t)
	_, ent := activeEntitlement(t, env, marketplacetest.PurchaseParams{Plan: "standard", Offer: first})
	local, _ := env.localEntitlement(ent)
	require.Equal(t, first, local.Offer)

	var newOffer string
	env.rec.setFail(func(_ context.Context, c *marketplace.Change) error {
		if c.Type == tPlanChanged {
			newOffer = c.Entitlement.Offer
		}
		return nil
	})
	require.NoError(t, env.srv.RequestOfferChange(env.ctx, ent, "standard", second))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tPlanChangeRequested, tPlanChanged}, env.rec.types(ent))
	assert.Equal(t, second, newOffer, "Change.Entitlement in OnEntitlementPlanChanged")
	local, _ = env.localEntitlement(ent)
	assert.Equal(t, second, local.Offer)
	env.requireInSync()
}

// The same replacement withdrawn by the customer is a cancelled change.
func TestOfferReplacementWithdrawn(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t, withProc(marketplace.Config{Policy: marketplace.ManualApproval("")}))
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	env.signup(acct)
	ent, err := env.srv.Purchase(env.ctx, marketplacetest.PurchaseParams{AccountID: acct, Plan: "standard",
		Offer: "projects/123/services/svc/privateOffers/first"})
	require.NoError(t, err)
	env.drain()
	require.NoError(t, env.proc.Approve(env.ctx, ent))
	env.drain()
	require.NoError(t, env.srv.RequestOfferChange(env.ctx, ent, "standard", "projects/123/services/svc/privateOffers/second"))
	env.drain()
	require.NoError(t, env.srv.CancelPlanChange(env.ctx, ent))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tPlanChangeRequested, tPlanChangeCancelled}, env.rec.types(ent))
	env.requireInSync()
}

func TestPlanChangeRejected(t *testing.T) {
	t.Parallel()
	policy := marketplace.PolicyFunc(func(_ context.Context, r marketplace.PolicyRequest) (marketplace.Decision, error) {
		if r.Kind == marketplace.ApprovalPlanChange && r.Entitlement.NewPendingPlan == "enterprise" {
			return marketplace.Decision{Outcome: marketplace.OutcomeRejected, Reason: "contact sales for enterprise"}, nil
		}
		return marketplace.Decision{Outcome: marketplace.OutcomeApproved}, nil
	})
	env := newProcEnv(t, withProc(marketplace.Config{Policy: policy}))
	_, ent := activeEntitlement(t, env, marketplacetest.PurchaseParams{Plan: "standard"})
	require.NoError(t, env.srv.RequestPlanChange(env.ctx, ent, "enterprise"))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tPlanChangeRequested, tPlanChangeCancelled}, env.rec.types(ent))
	got, _ := env.srv.Entitlement(ent)
	assert.Equal(t, "standard", got.Plan)
	assert.Equal(t, 1, env.srv.Calls(marketplacetest.MethodEntitlementsRejectPlanChange))
	env.requireInSync()
}

// With plan changes applied at the end of the term, the approval leaves the
// entitlement in PENDING_PLAN_CHANGE and the new plan is reported when it
// takes effect.
func TestPlanChangeAtTermEnd(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	env.srv.SetPlanChangeAtTermEnd(true)
	_, ent := activeEntitlement(t, env, marketplacetest.PurchaseParams{Plan: "standard", OfferDuration: "P1M"})
	require.NoError(t, env.srv.RequestPlanChange(env.ctx, ent, "premium"))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tPlanChangeRequested}, env.rec.types(ent))
	local, _ := env.localEntitlement(ent)
	assert.Equal(t, procurement.EntitlementPendingPlanChange, local.State)
	require.NoError(t, env.srv.EndTerm(env.ctx, ent))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tPlanChangeRequested, tPlanChanged}, env.rec.types(ent))
	env.requireInSync()
}

func TestPlanChangeWithdrawnByCustomer(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t, withProc(marketplace.Config{Policy: marketplace.PolicyFunc(
		func(_ context.Context, r marketplace.PolicyRequest) (marketplace.Decision, error) {
			if r.Kind == marketplace.ApprovalPlanChange {
				return marketplace.Decision{Outcome: marketplace.OutcomeQueued}, nil
			}
			return marketplace.Decision{Outcome: marketplace.OutcomeApproved}, nil
		})}))
	_, ent := activeEntitlement(t, env, marketplacetest.PurchaseParams{Plan: "standard"})
	require.NoError(t, env.srv.RequestPlanChange(env.ctx, ent, "premium"))
	env.drain()
	q, err := env.proc.PendingApprovals(env.ctx)
	require.NoError(t, err)
	require.Len(t, q, 1)
	assert.Equal(t, marketplace.ApprovalPlanChange, q[0].Kind)
	assert.Equal(t, "premium", q[0].Plan)

	require.NoError(t, env.srv.CancelPlanChange(env.ctx, ent))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tPlanChangeRequested, tPlanChangeCancelled}, env.rec.types(ent))
	q, err = env.proc.PendingApprovals(env.ctx)
	require.NoError(t, err)
	assert.Empty(t, q, "a withdrawn request leaves the queue")
	require.ErrorIs(t, env.proc.Approve(env.ctx, ent), marketplace.ErrNotQueued)
	env.requireInSync()
}

func TestCancellationLifecycle(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	_, ent := activeEntitlement(t, env, marketplacetest.PurchaseParams{OfferDuration: "P1Y"})
	require.NoError(t, env.srv.Cancel(env.ctx, ent, false))
	env.drain()
	require.NoError(t, env.srv.RevertCancellation(env.ctx, ent))
	env.drain()
	require.NoError(t, env.srv.Cancel(env.ctx, ent, false))
	env.drain()
	local, _ := env.localEntitlement(ent)
	assert.True(t, local.CancelTime.IsZero(), "usable until the end of the term")
	require.NoError(t, env.srv.EndTerm(env.ctx, ent))
	env.drain()
	local, _ = env.localEntitlement(ent)
	assert.Equal(t, procurement.EntitlementCancelled, local.State)
	assert.False(t, local.CancelTime.IsZero())
	require.NoError(t, env.srv.DeleteEntitlement(env.ctx, ent))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tPendingCancellation, tReverted,
		tPendingCancellation, tCancelled, tDeleted}, env.rec.types(ent))
	_, ok := env.localEntitlement(ent)
	assert.False(t, ok, "deleted entitlements leave the store")
	env.requireInSync()
}

// An immediate cancellation publishes CANCELLING then CANCELLED; the app
// is told to turn the service off once, in whatever order they arrive.
func TestImmediateCancellation(t *testing.T) {
	t.Parallel()
	for _, reversed := range []bool{false, true} {
		env := newProcEnv(t)
		_, ent := activeEntitlement(t, env, marketplacetest.PurchaseParams{})
		require.NoError(t, env.srv.Cancel(env.ctx, ent, true))
		msgs := env.newMessages()
		require.Len(t, msgs, 2)
		if reversed {
			msgs[0], msgs[1] = msgs[1], msgs[0]
		}
		for _, m := range msgs {
			require.NoError(t, env.proc.HandleMessage(env.ctx, m))
		}
		assert.Equal(t, []events.Type{tCreationRequested, tActive, tCancelled}, env.rec.types(ent), "reversed=%v", reversed)
		env.requireInSync()
	}
}

func TestRenewedAndOfferEnded(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	_, ent := activeEntitlement(t, env, marketplacetest.PurchaseParams{OfferDuration: "P1M"})
	require.NoError(t, env.srv.EndTerm(env.ctx, ent))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tRenewed}, env.rec.types(ent))

	fixedEnd := env.srv.Clock().Now().AddDate(1, 0, 0)
	_, offer := activeEntitlement(t, env, marketplacetest.PurchaseParams{
		Offer: "projects/1/services/s/privateOffers/o1", OfferEndTime: fixedEnd})
	require.NoError(t, env.srv.EndTerm(env.ctx, offer))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tOfferEnded}, env.rec.types(offer))

	// A late RENEWED for an entitlement cancelled meanwhile says nothing.
	require.NoError(t, env.srv.EndTerm(env.ctx, ent))
	renewed := env.newMessages()
	require.NoError(t, env.srv.Cancel(env.ctx, ent, true))
	env.drain()
	for _, m := range renewed {
		require.NoError(t, env.proc.HandleMessage(env.ctx, m))
	}
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tRenewed, tCancelled}, env.rec.types(ent))
}

// ENTITLEMENT_OFFER_ACCEPTED (automatic approval) with a scheduled start:
// the app hears of the accepted offer (with its start time), then of the
// activation when it starts. Nothing is approved by the vendor.
func TestOfferAcceptedScheduledStart(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	start := env.srv.Clock().Now().Add(48 * time.Hour)
	var startSeen time.Time
	env.rec.setFail(func(_ context.Context, c *marketplace.Change) error {
		if c.Type == tOfferAccepted {
			startSeen = c.Entitlement.NewOfferStartTime
		}
		return nil
	})
	_, ent := env.purchase(marketplacetest.PurchaseParams{AutoApprove: true, StartTime: start, Plan: "annual"})
	env.drain()
	assert.Equal(t, []events.Type{tOfferAccepted}, env.rec.types(ent))
	assert.True(t, startSeen.Equal(start), "OnEntitlementOfferAccepted sees newOfferStartTime")
	env.srv.Clock().Advance(49 * time.Hour)
	env.drain()
	assert.Equal(t, []events.Type{tOfferAccepted, tActive}, env.rec.types(ent))
	assert.Equal(t, 0, env.srv.Calls(marketplacetest.MethodEntitlementsApprove))
	env.requireInSync()
}

// ACCOUNT_DELETED purges the customer's data exactly once, even when
// delivered three times and before the entitlement messages that precede
// it.
func TestAccountDeletedPurgesOnce(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	var purgedTenant string
	env.rec.setFail(func(_ context.Context, c *marketplace.Change) error {
		if c.Type == tAccountDeleted {
			purgedTenant = c.Linked.VendorUserID
		}
		return nil
	})
	acct, ent := activeEntitlement(t, env, marketplacetest.PurchaseParams{})
	require.NoError(t, env.srv.DeleteAccount(env.ctx, acct))
	msgs := env.newMessages() // CANCELLED, DELETED, ACCOUNT_DELETED
	require.Len(t, msgs, 3)
	deleted := msgs[2]
	for range 3 {
		require.NoError(t, env.proc.HandleMessage(env.ctx, deleted))
	}
	for _, m := range msgs {
		require.NoError(t, env.proc.HandleMessage(env.ctx, m))
	}
	assert.Equal(t, []events.Type{tAccountActive, tAccountDeleted}, env.rec.types(acct))
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tCancelled, tDeleted}, env.rec.types(ent))
	assert.Equal(t, "tenant-"+acct[:8], purgedTenant, "the purge callback sees the linked account")
	_, ok := env.localAccount(acct)
	assert.False(t, ok)
	_, ok = env.localEntitlement(ent)
	assert.False(t, ok)
	env.requireInSync()
}

func TestManualApprovalQueue(t *testing.T) {
	t.Parallel()
	const msg = "Provisioning, expect 1 business day"
	env := newProcEnv(t, withProc(marketplace.Config{Policy: marketplace.ManualApproval(msg)}))
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	env.signup(acct)
	_, e1 := env.purchase(marketplacetest.PurchaseParams{AccountID: acct, Plan: "a"})
	_, e2 := env.purchase(marketplacetest.PurchaseParams{AccountID: acct, Plan: "b"})
	env.drain()

	q, err := env.proc.PendingApprovals(env.ctx)
	require.NoError(t, err)
	require.Len(t, q, 2)
	assert.Equal(t, e1, q[0].EntitlementID)
	assert.Equal(t, marketplace.ApprovalEntitlement, q[0].Kind)
	got, _ := env.srv.Entitlement(e1)
	assert.Equal(t, msg, got.MessageToUser, "the customer sees the status message while waiting")
	assert.Equal(t, marketplacetest.StateActivationRequested, got.State)
	env.drain() // redeliveries and replays change nothing
	assert.Equal(t, 2, env.srv.Calls(marketplacetest.MethodEntitlementsPatch), "message set once per entitlement")

	require.NoError(t, env.proc.Approve(env.ctx, e1))
	require.ErrorIs(t, env.proc.Approve(env.ctx, e1), marketplace.ErrNotQueued)
	require.NoError(t, env.proc.Reject(env.ctx, e2, "not available in your region"))
	env.drain()

	assert.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(e1))
	assert.Equal(t, []events.Type{tCreationRequested, tCancelled, tDeleted}, env.rec.types(e2))
	_, ok := env.srv.Entitlement(e2)
	assert.False(t, ok, "a rejected entitlement is removed")
	q, err = env.proc.PendingApprovals(env.ctx)
	require.NoError(t, err)
	assert.Empty(t, q)
	env.requireInSync()
}

func TestManualApprovalOfPlanChange(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t, withProc(marketplace.Config{Policy: marketplace.PolicyFunc(
		func(_ context.Context, r marketplace.PolicyRequest) (marketplace.Decision, error) {
			if r.Kind == marketplace.ApprovalPlanChange {
				return marketplace.Decision{Outcome: marketplace.OutcomeQueued, MessageToUser: "reviewing"}, nil
			}
			return marketplace.Decision{Outcome: marketplace.OutcomeApproved}, nil
		})}))
	_, ent := activeEntitlement(t, env, marketplacetest.PurchaseParams{Plan: "standard"})
	require.NoError(t, env.srv.RequestPlanChange(env.ctx, ent, "premium"))
	env.drain()
	got, _ := env.srv.Entitlement(ent)
	assert.Equal(t, "reviewing", got.MessageToUser)
	require.NoError(t, env.proc.Approve(env.ctx, ent))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tPlanChangeRequested, tPlanChanged}, env.rec.types(ent))
	env.requireInSync()
}

func TestApproveWhenNoLongerPending(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t, withProc(marketplace.Config{Policy: marketplace.ManualApproval("")}))
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	env.signup(acct)
	_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct})
	env.drain()
	require.NoError(t, env.srv.Cancel(env.ctx, ent, true)) // the customer gave up; not yet notified
	require.ErrorIs(t, env.proc.Approve(env.ctx, ent), marketplace.ErrNoLongerPending)
	q, err := env.proc.PendingApprovals(env.ctx)
	require.NoError(t, err)
	assert.Empty(t, q)
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tCancelled}, env.rec.types(ent))
}

// A queued plan-change request is for one plan. When the customer has
// since withdrawn it and asked for another, the operator's Approve says
// ErrNoLongerPending and the stale request leaves the queue, as promised;
// the new request is decided when its message arrives.
func TestApproveAfterCustomerAskedForAnotherPlan(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t, withProc(marketplace.Config{Policy: marketplace.PolicyFunc(
		func(_ context.Context, r marketplace.PolicyRequest) (marketplace.Decision, error) {
			if r.Kind == marketplace.ApprovalPlanChange {
				return marketplace.Decision{Outcome: marketplace.OutcomeQueued}, nil
			}
			return marketplace.Decision{Outcome: marketplace.OutcomeApproved}, nil
		})}))
	acct, ent := env.purchase(marketplacetest.PurchaseParams{Plan: "p"})
	env.drain()
	env.signup(acct)
	env.drain()
	require.NoError(t, env.srv.RequestPlanChange(env.ctx, ent, "q"))
	env.drain()
	queue, err := env.proc.PendingApprovals(env.ctx)
	require.NoError(t, err)
	require.Len(t, queue, 1)
	require.Equal(t, "q", queue[0].Plan)

	// The customer withdraws q and asks for r; no message delivered yet.
	require.NoError(t, env.srv.CancelPlanChange(env.ctx, ent))
	require.NoError(t, env.srv.RequestPlanChange(env.ctx, ent, "r"))
	require.ErrorIs(t, env.proc.Approve(env.ctx, ent), marketplace.ErrNoLongerPending)
	queue, err = env.proc.PendingApprovals(env.ctx)
	require.NoError(t, err)
	require.Empty(t, queue)

	env.drain()
	queue, err = env.proc.PendingApprovals(env.ctx)
	require.NoError(t, err)
	require.Len(t, queue, 1)
	require.Equal(t, "r", queue[0].Plan)
	require.NoError(t, env.proc.Approve(env.ctx, ent))
	got, err := env.client.GetEntitlement(env.ctx, ent)
	require.NoError(t, err)
	require.Equal(t, "r", got.Plan)
}

func TestPolicyErrorsNack(t *testing.T) {
	t.Parallel()
	fail := true
	env := newProcEnv(t, withProc(marketplace.Config{Policy: marketplace.PolicyFunc(
		func(context.Context, marketplace.PolicyRequest) (marketplace.Decision, error) {
			if fail {
				return marketplace.Decision{}, errors.New("billing system down")
			}
			return marketplace.Decision{Outcome: marketplace.OutcomeApproved}, nil
		})}))
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	env.signup(acct)
	env.drain()
	_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct})
	msgs := env.newMessages()
	require.Len(t, msgs, 1)
	require.Error(t, env.proc.HandleMessage(env.ctx, msgs[0]), "policy failure: not acknowledged")
	fail = false
	require.NoError(t, env.proc.HandleMessage(env.ctx, msgs[0]))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(ent))
}

func TestUndecodableMessageIsPoison(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	for _, body := range []string{"not json", `{"eventId":"e1"}`, `{"eventType":"ENTITLEMENT_ACTIVE","entitlement":{"id":"x"}}`} {
		require.NoError(t, env.proc.HandleMessage(env.ctx, rawMessage("m-"+body[:3], body)), "poison is acknowledged")
	}
	p := env.poison()
	require.Len(t, p, 3)
	for _, x := range p {
		assert.Contains(t, x.Reason, "undecodable")
		assert.Empty(t, x.EventID)
		assert.NotEmpty(t, x.Data)
	}
	assert.Empty(t, env.rec.all())
}

func TestUnknownEventType(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	m := rawMessage("m1", `{"eventId":"NEW-1","eventType":"ENTITLEMENT_TELEPORTED","entitlement":{"id":"e1"}}`)
	require.NoError(t, env.proc.HandleMessage(env.ctx, m))
	require.NoError(t, env.proc.HandleMessage(env.ctx, m), "a duplicate is acknowledged without a second callback")
	calls := env.rec.all()
	require.Len(t, calls, 1)
	assert.Equal(t, events.Type("ENTITLEMENT_TELEPORTED"), calls[0].Type)
	assert.Empty(t, env.poison())
}

func TestPermanentHandlerErrorIsPoison(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	env.signup(acct)
	env.drain()
	env.rec.setFail(func(_ context.Context, c *marketplace.Change) error {
		if c.Type == tCreationRequested {
			return events.Permanent(errors.New("plan unknown to billing"))
		}
		return nil
	})
	_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct})
	msgs := env.newMessages()
	require.Len(t, msgs, 1)
	require.NoError(t, env.proc.HandleMessage(env.ctx, msgs[0]), "acknowledged")
	require.NoError(t, env.proc.HandleMessage(env.ctx, msgs[0]), "its duplicate too")
	p := env.poison()
	require.Len(t, p, 1)
	assert.Contains(t, p[0].Reason, "plan unknown to billing")
	assert.Equal(t, msgs[0].ID, p[0].MessageID)
	assert.NotEmpty(t, p[0].EventID)
	_ = ent
}

// A transient callback error leaves the message unacknowledged; the
// redelivery succeeds and the callback's effect happens once.
func TestTransientHandlerErrorThenSuccess(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	acct, ent := env.purchase(marketplacetest.PurchaseParams{})
	env.drain()
	env.signup(acct)
	require.NoError(t, env.srv.Cancel(env.ctx, ent, false))
	failures := 2
	env.rec.setFail(func(_ context.Context, c *marketplace.Change) error {
		if c.Type == tPendingCancellation && failures > 0 {
			failures--
			return errors.New("app database briefly unavailable")
		}
		return nil
	})
	msgs := env.newMessages()
	var pc marketplace.Message
	for _, m := range msgs {
		if string(m.Data) != "" && contains(m.Data, "ENTITLEMENT_PENDING_CANCELLATION") {
			pc = m
		}
	}
	require.NotEmpty(t, pc.Data)
	require.Error(t, env.proc.HandleMessage(env.ctx, pc))
	require.Error(t, env.proc.HandleMessage(env.ctx, pc))
	require.NoError(t, env.proc.HandleMessage(env.ctx, pc))
	require.NoError(t, env.proc.HandleMessage(env.ctx, pc))
	for _, m := range msgs {
		require.NoError(t, env.proc.HandleMessage(env.ctx, m))
	}
	assert.Equal(t, []events.Type{tCreationRequested, tActive, tPendingCancellation}, env.rec.types(ent))
	assert.Empty(t, env.poison())
}

func TestHandlerPanicNacks(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	env.signup(acct)
	env.drain()
	panicking := true
	env.rec.setFail(func(context.Context, *marketplace.Change) error {
		if panicking {
			panic("nil map in app code")
		}
		return nil
	})
	_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct})
	msgs := env.newMessages()
	err = env.proc.HandleMessage(env.ctx, msgs[0])
	var pe *marketplace.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "nil map in app code", pe.Value)
	assert.NotEmpty(t, pe.Stack)
	assert.Empty(t, env.poison(), "a panic is not poison: redelivered")
	assert.Equal(t, 0, env.srv.Calls(marketplacetest.MethodEntitlementsApprove),
		"OnEntitlementCreationRequested runs (and must succeed) before the approval")
	panicking = false
	require.NoError(t, env.proc.HandleMessage(env.ctx, msgs[0]))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(ent))
}

func TestWithPoisonAfter(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t, withProc(marketplace.Config{PoisonAfter: 3}))
	acct, _ := env.purchase(marketplacetest.PurchaseParams{})
	env.rec.setFail(func(context.Context, *marketplace.Change) error { return errors.New("always failing") })
	msgs := env.newMessages()
	m := msgs[0] // the account message
	for attempt := 1; attempt <= 2; attempt++ {
		m.DeliveryAttempt = attempt
		require.Error(t, env.proc.HandleMessage(env.ctx, m))
	}
	m.DeliveryAttempt = 3
	require.NoError(t, env.proc.HandleMessage(env.ctx, m))
	require.Len(t, env.poison(), 1)
	_ = acct
}

// Transient Procurement API failures while re-reading nack the message;
// the redelivery succeeds.
func TestProcurementOutageNacks(t *testing.T) {
	t.Parallel()
	env := newProcEnv(t)
	acct, err := env.srv.CreateAccount(env.ctx)
	require.NoError(t, err)
	env.signup(acct)
	env.drain()
	_, ent := env.purchase(marketplacetest.PurchaseParams{AccountID: acct})
	msgs := env.newMessages()
	env.srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodEntitlementsGet, Kind: marketplacetest.FaultStatus, Status: 503, Times: -1})
	require.Error(t, env.proc.HandleMessage(env.ctx, msgs[0]))
	env.srv.ClearFaults()
	// The approval's response is lost: the client re-reads and carries on.
	env.srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodEntitlementsApprove, Kind: marketplacetest.FaultLostResponse})
	require.NoError(t, env.proc.HandleMessage(env.ctx, msgs[0]))
	env.drain()
	assert.Equal(t, []events.Type{tCreationRequested, tActive}, env.rec.types(ent))
	env.requireInSync()
}

func contains(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}
