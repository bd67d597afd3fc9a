package procurement_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/googleapi"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

func TestApproveEntitlementBeforeSignup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	accID := b.account(t, false)
	id := b.purchase(t, marketplacetest.PurchaseParams{AccountID: accID})

	_, err := b.client.ApproveEntitlement(ctx, id, nil)
	require.ErrorIs(t, err, procurement.ErrFailedPrecondition)
	require.ErrorIs(t, err, procurement.ErrSignupNotApproved)
	assert.False(t, procurement.IsRetryable(err))
	assert.Contains(t, err.Error(), "procurement: approve entitlement providers/"+b.srv.ProviderID()+"/entitlements/"+id+": failed precondition (400): Precondition check failed.")
	assert.Contains(t, err.Error(), "approve the account sign-up first")
	assert.Contains(t, err.Error(), "sign-up approval is PENDING")
	var gerr *googleapi.Error
	require.ErrorAs(t, err, &gerr)
	assert.Equal(t, 400, gerr.Code)

	// The documented order: sign-up first, then the waiting entitlements.
	_, err = b.client.ApproveAccountSignup(ctx, accID)
	require.NoError(t, err)
	res, err := b.client.ApproveEntitlement(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
	assert.Equal(t, procurement.EntitlementActive, res.Entitlement.State)
}

func TestApproveEntitlementTwice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.purchase(t, marketplacetest.PurchaseParams{})

	res, err := b.client.ApproveEntitlement(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
	assert.Equal(t, procurement.EntitlementActive, res.Entitlement.State)

	res, err = b.client.ApproveEntitlement(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeAlreadyDone, res.Outcome)
	assert.Equal(t, procurement.EntitlementActive, res.Entitlement.State)
	assert.Equal(t, 1, b.srv.Calls(marketplacetest.MethodEntitlementsApprove))

	// Later active states count as approved too.
	require.NoError(t, b.srv.RequestPlanChange(ctx, id, "pro"))
	res, err = b.client.ApproveEntitlement(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeAlreadyDone, res.Outcome)
	require.NoError(t, b.srv.Cancel(ctx, id, false))
	res, err = b.client.ApproveEntitlement(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeAlreadyDone, res.Outcome)
	assert.Equal(t, procurement.EntitlementPendingCancellation, res.Entitlement.State)
	assert.Equal(t, 1, b.srv.Calls(marketplacetest.MethodEntitlementsApprove))
}

func TestApproveEntitlementScheduledStart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	start := b.srv.Clock().Now().Add(72 * time.Hour)
	id := b.purchase(t, marketplacetest.PurchaseParams{StartTime: start, OfferDuration: "P1Y"})

	res, err := b.client.ApproveEntitlement(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
	assert.Equal(t, procurement.EntitlementActivationRequested, res.Entitlement.State, "active only at the scheduled start")
	assert.True(t, start.Equal(res.Entitlement.NewOfferStartTime))

	res, err = b.client.ApproveEntitlement(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeAlreadyDone, res.Outcome, "approved, waiting for its start")
	assert.Equal(t, 1, b.srv.Calls(marketplacetest.MethodEntitlementsApprove))

	_, err = b.client.RejectEntitlement(ctx, id, nil)
	require.ErrorIs(t, err, procurement.ErrWrongState, "an approved entitlement cannot be rejected")
}

func TestApproveEntitlementWrongState(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.purchase(t, marketplacetest.PurchaseParams{})
	require.NoError(t, b.srv.Cancel(ctx, id, true))

	_, err := b.client.ApproveEntitlement(ctx, id, nil)
	require.ErrorIs(t, err, procurement.ErrWrongState)
	require.ErrorIs(t, err, procurement.ErrFailedPrecondition)
	var se *procurement.StateError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, string(procurement.EntitlementCancelled), se.State)
	assert.Zero(t, b.srv.Calls(marketplacetest.MethodEntitlementsApprove))

	_, err = b.client.ApproveEntitlement(ctx, "missing", nil)
	require.ErrorIs(t, err, procurement.ErrNotFound)
}

func TestApproveEntitlementMigrated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	old := b.active(t)
	id := b.purchase(t, marketplacetest.PurchaseParams{})
	res, err := b.client.ApproveEntitlement(ctx, id, &procurement.ApproveEntitlementParams{EntitlementMigrated: old})
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
	_, err = b.client.ApproveEntitlement(ctx, id, &procurement.ApproveEntitlementParams{EntitlementMigrated: "bad/name"})
	require.ErrorIs(t, err, procurement.ErrInvalidName)
}

func TestRejectEntitlement(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.purchase(t, marketplacetest.PurchaseParams{})

	res, err := b.client.RejectEntitlement(ctx, id, &procurement.RejectEntitlementParams{Reason: "region not served"})
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
	_, err = b.client.GetEntitlement(ctx, id)
	require.ErrorIs(t, err, procurement.ErrNotFound, "a rejected entitlement is removed")
	_, err = b.client.RejectEntitlement(ctx, id, nil)
	require.ErrorIs(t, err, procurement.ErrNotFound)

	active := b.active(t)
	_, err = b.client.RejectEntitlement(ctx, active, nil)
	require.ErrorIs(t, err, procurement.ErrWrongState)
	assert.Equal(t, 1, b.srv.Calls(marketplacetest.MethodEntitlementsReject))

	cancelled := b.purchase(t, marketplacetest.PurchaseParams{})
	require.NoError(t, b.srv.Cancel(ctx, cancelled, true))
	res, err = b.client.RejectEntitlement(ctx, cancelled, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeAlreadyDone, res.Outcome)
}

func TestApprovePlanChange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.active(t)
	require.NoError(t, b.srv.RequestPlanChange(ctx, id, "pro"))

	res, err := b.client.ApprovePlanChange(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
	assert.Equal(t, procurement.EntitlementActive, res.Entitlement.State)
	assert.Equal(t, "pro", res.Entitlement.Plan)

	res, err = b.client.ApprovePlanChange(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeAlreadyDone, res.Outcome)
	res, err = b.client.ApprovePlanChange(ctx, id, &procurement.ApprovePlanChangeParams{ExpectedPlan: "pro"})
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeAlreadyDone, res.Outcome, "the expected plan is the plan now")
	assert.Equal(t, 1, b.srv.Calls(marketplacetest.MethodEntitlementsApprovePlanChange))

	_, err = b.client.ApprovePlanChange(ctx, id, &procurement.ApprovePlanChangeParams{ExpectedPlan: "enterprise"})
	require.ErrorIs(t, err, procurement.ErrWrongState, "no change to enterprise is pending or made")
}

func TestApprovePlanChangeExpectedPlanMismatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.active(t)
	require.NoError(t, b.srv.RequestPlanChange(ctx, id, "enterprise"))

	_, err := b.client.ApprovePlanChange(ctx, id, &procurement.ApprovePlanChangeParams{ExpectedPlan: "pro"})
	require.ErrorIs(t, err, procurement.ErrPlanMismatch)
	var pm *procurement.PlanMismatchError
	require.ErrorAs(t, err, &pm)
	assert.Equal(t, "pro", pm.Expected)
	assert.Equal(t, "enterprise", pm.Actual)
	assert.Zero(t, b.srv.Calls(marketplacetest.MethodEntitlementsApprovePlanChange), "nothing approved")
	snap, _ := b.srv.Entitlement(id)
	assert.Equal(t, string(procurement.EntitlementPendingPlanChangeApproval), snap.State)

	_, err = b.client.RejectPlanChange(ctx, id, &procurement.RejectPlanChangeParams{ExpectedPlan: "pro"})
	require.ErrorIs(t, err, procurement.ErrPlanMismatch)
	assert.Zero(t, b.srv.Calls(marketplacetest.MethodEntitlementsRejectPlanChange))
}

// The customer withdraws "pro" and asks for "enterprise" while the approval
// of "pro" is in flight: the helper must not approve the stale plan, and
// without an expected plan approves the current one.
func TestApprovePlanChangeRacesWithCustomer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		expected string
		wantErr  error
		wantPlan string
	}{
		{name: "no expectation approves the current plan", wantPlan: "enterprise"},
		{name: "expectation refuses the new plan", expected: "pro", wantErr: procurement.ErrPlanMismatch, wantPlan: "standard"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := t.Context()
			id := b.active(t)
			require.NoError(t, b.srv.RequestPlanChange(ctx, id, "pro"))
			// Hold the approve call long enough for the customer to act.
			b.srv.InjectFault(marketplacetest.Fault{Method: marketplacetest.MethodEntitlementsApprovePlanChange,
				Kind: marketplacetest.FaultLatency, Latency: 300 * time.Millisecond})

			type result struct {
				res procurement.EntitlementResult
				err error
			}
			done := make(chan result, 1)
			go func() {
				res, err := b.client.ApprovePlanChange(ctx, id, &procurement.ApprovePlanChangeParams{ExpectedPlan: tt.expected})
				done <- result{res, err}
			}()
			require.Eventually(t, func() bool {
				return b.srv.Calls(marketplacetest.MethodEntitlementsApprovePlanChange) == 1
			}, 5*time.Second, time.Millisecond)
			require.NoError(t, b.srv.CancelPlanChange(ctx, id))
			require.NoError(t, b.srv.RequestPlanChange(ctx, id, "enterprise"))

			r := <-done
			if tt.wantErr != nil {
				require.ErrorIs(t, r.err, tt.wantErr)
			} else {
				require.NoError(t, r.err)
				assert.Equal(t, procurement.OutcomeApplied, r.res.Outcome)
			}
			snap, _ := b.srv.Entitlement(id)
			assert.Equal(t, tt.wantPlan, snap.Plan)
		})
	}
}

func TestApprovePlanChangeAtTermEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	b.srv.SetPlanChangeAtTermEnd(true)
	id := b.active(t)
	require.NoError(t, b.srv.RequestPlanChange(ctx, id, "pro"))

	res, err := b.client.ApprovePlanChange(ctx, id, &procurement.ApprovePlanChangeParams{ExpectedPlan: "pro"})
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
	assert.Equal(t, procurement.EntitlementPendingPlanChange, res.Entitlement.State)

	res, err = b.client.ApprovePlanChange(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeAlreadyDone, res.Outcome)
	_, err = b.client.ApprovePlanChange(ctx, id, &procurement.ApprovePlanChangeParams{ExpectedPlan: "gold"})
	require.ErrorIs(t, err, procurement.ErrPlanMismatch)
	_, err = b.client.RejectPlanChange(ctx, id, nil)
	require.ErrorIs(t, err, procurement.ErrWrongState, "an approved change cannot be rejected")
}

func TestPlanChangeWrongStates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	pending := b.purchase(t, marketplacetest.PurchaseParams{})
	_, err := b.client.ApprovePlanChange(ctx, pending, nil)
	require.ErrorIs(t, err, procurement.ErrWrongState)
	_, err = b.client.RejectPlanChange(ctx, pending, nil)
	require.ErrorIs(t, err, procurement.ErrWrongState)

	cancelling := b.active(t)
	require.NoError(t, b.srv.Cancel(ctx, cancelling, false))
	_, err = b.client.ApprovePlanChange(ctx, cancelling, nil)
	require.ErrorIs(t, err, procurement.ErrWrongState)
	assert.Zero(t, b.srv.Calls(marketplacetest.MethodEntitlementsApprovePlanChange)+b.srv.Calls(marketplacetest.MethodEntitlementsRejectPlanChange))
}

func TestRejectPlanChange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.active(t)
	require.NoError(t, b.srv.RequestPlanChange(ctx, id, "pro"))

	res, err := b.client.RejectPlanChange(ctx, id, &procurement.RejectPlanChangeParams{ExpectedPlan: "pro", Reason: "not available in your region"})
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeApplied, res.Outcome)
	assert.Equal(t, procurement.EntitlementActive, res.Entitlement.State)
	assert.Equal(t, "standard", res.Entitlement.Plan, "stays on the old plan")

	res, err = b.client.RejectPlanChange(ctx, id, &procurement.RejectPlanChangeParams{ExpectedPlan: "pro"})
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeAlreadyDone, res.Outcome)
	assert.Equal(t, 1, b.srv.Calls(marketplacetest.MethodEntitlementsRejectPlanChange))

	// Rejecting a change that was approved is refused.
	require.NoError(t, b.srv.RequestPlanChange(ctx, id, "gold"))
	_, err = b.client.ApprovePlanChange(ctx, id, nil)
	require.NoError(t, err)
	_, err = b.client.RejectPlanChange(ctx, id, &procurement.RejectPlanChangeParams{ExpectedPlan: "gold"})
	require.ErrorIs(t, err, procurement.ErrWrongState)
}

// Two replicas handle the same Pub/Sub message at once: both succeed, the
// entitlement is approved once.
func TestConcurrentApprovals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.purchase(t, marketplacetest.PurchaseParams{})

	const n = 4
	var wg sync.WaitGroup
	outcomes := make([]procurement.Outcome, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			res, err := b.client.ApproveEntitlement(ctx, id, nil)
			outcomes[i], errs[i] = res.Outcome, err
		})
	}
	wg.Wait()
	applied := 0
	for i := range n {
		require.NoError(t, errs[i])
		if outcomes[i] == procurement.OutcomeApplied {
			applied++
		}
	}
	assert.Equal(t, 1, applied, "exactly one call made the change: %v", outcomes)
	snap, _ := b.srv.Entitlement(id)
	assert.Equal(t, string(procurement.EntitlementActive), snap.State)
	assert.False(t, errors.Is(errs[0], procurement.ErrFailedPrecondition))
}
