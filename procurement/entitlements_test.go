package procurement_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gcpmarketplace/gcpmarketplace/marketplace/marketplacetest"
	"github.com/gcpmarketplace/gcpmarketplace/procurement"
)

func TestGetEntitlement(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	accID := b.account(t, true)
	id := b.purchase(t, marketplacetest.PurchaseParams{AccountID: accID, Plan: "gold", UsageBased: true, OfferDuration: "P1Y"})

	e, err := b.client.GetEntitlement(ctx, id)
	require.NoError(t, err)
	snap, ok := b.srv.Entitlement(id)
	require.True(t, ok)
	assert.Equal(t, id, e.ID)
	assert.Equal(t, b.client.EntitlementName(id), e.Name)
	assert.Equal(t, accID, e.AccountID)
	assert.Equal(t, snap.Account, e.Account)
	assert.Equal(t, procurement.EntitlementActivationRequested, e.State)
	assert.Equal(t, "gold", e.Plan)
	assert.Equal(t, b.srv.ServiceName(), e.ProductExternalName)
	assert.Equal(t, snap.UsageReportingID, e.UsageReportingID)
	assert.NotEmpty(t, e.UsageReportingID)
	assert.Equal(t, "P1Y", e.OfferDuration)
	assert.True(t, snap.UpdateTime.Equal(e.UpdateTime), "%v vs %v", snap.UpdateTime, e.UpdateTime)
	assert.True(t, snap.CreateTime.Equal(e.CreateTime))
	projects := make([]string, 0, len(e.Consumers))
	for _, c := range e.Consumers {
		projects = append(projects, c.Project)
	}
	assert.Equal(t, snap.ConsumerProjects, nilIfEmpty(projects))

	_, err = b.client.GetEntitlement(ctx, "nope")
	require.ErrorIs(t, err, procurement.ErrNotFound)
	assert.Contains(t, err.Error(), "procurement: get entitlement providers/"+b.srv.ProviderID()+"/entitlements/nope: not found (404)")
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestListEntitlementsFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	acc1 := b.account(t, true)
	acc2 := b.account(t, true)
	pending1 := b.purchase(t, marketplacetest.PurchaseParams{AccountID: acc1, Plan: "basic"})
	pending2 := b.purchase(t, marketplacetest.PurchaseParams{AccountID: acc1, Plan: "pro-plan"})
	other := b.purchase(t, marketplacetest.PurchaseParams{AccountID: acc2, Plan: "basic"})
	_, err := b.client.ApproveEntitlement(ctx, other, nil)
	require.NoError(t, err)

	list := func(f procurement.Filter, pageSize int) []string {
		t.Helper()
		var ids []string
		for e, err := range b.client.ListEntitlements(ctx, &procurement.ListEntitlementsParams{Filter: f, PageSize: pageSize}) {
			require.NoError(t, err, "filter %s", f)
			ids = append(ids, e.ID)
		}
		return ids
	}
	pendingOfAcc1 := procurement.And(procurement.FilterAccount(acc1), procurement.FilterState(procurement.EntitlementActivationRequested))
	assert.ElementsMatch(t, []string{pending1, pending2}, list(pendingOfAcc1, 0))
	assert.ElementsMatch(t, []string{pending1, pending2}, list(pendingOfAcc1, 1), "paged")
	assert.ElementsMatch(t, []string{pending1, pending2, other}, list(procurement.Filter{}, 2))
	assert.ElementsMatch(t, []string{other}, list(procurement.FilterState(procurement.EntitlementActive), 0))
	assert.ElementsMatch(t, []string{pending2}, list(procurement.FilterPlan("pro-plan"), 0), "a quoted value")
	assert.ElementsMatch(t, []string{pending1, other}, list(procurement.Not(procurement.FilterPlan("pro-plan")), 0))
	assert.ElementsMatch(t, []string{pending2, other}, list(procurement.Or(procurement.FilterPlan("pro-plan"), procurement.FilterAccount(acc2)), 0))
	assert.ElementsMatch(t, []string{pending1}, list(procurement.And(procurement.FilterAccount(acc1),
		procurement.Or(procurement.FilterPlan("basic"), procurement.FilterPlan("none"))), 0))
	assert.ElementsMatch(t, []string{other}, list(procurement.Raw("state=active"), 0))
	assert.ElementsMatch(t, []string{other}, list(procurement.Ne("state", "ENTITLEMENT_ACTIVATION_REQUESTED"), 0))
	assert.Empty(t, list(procurement.FilterAccount("someone-else"), 0))

	var gotErr error
	for _, err := range b.client.ListEntitlements(ctx, &procurement.ListEntitlementsParams{Filter: procurement.Raw("bogus_attr=1")}) {
		gotErr = err
	}
	require.ErrorIs(t, gotErr, procurement.ErrInvalidArgument)
	assert.Contains(t, gotErr.Error(), "procurement: list entitlements providers/"+b.srv.ProviderID()+": invalid argument (400)")

	page, err := b.client.ListEntitlementsPage(ctx, &procurement.ListEntitlementsParams{PageSize: 2})
	require.NoError(t, err)
	assert.Len(t, page.Entitlements, 2)
	assert.NotEmpty(t, page.NextPageToken)
}

func TestSetMessageToUser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	id := b.purchase(t, marketplacetest.PurchaseParams{})

	e, err := b.client.SetMessageToUser(ctx, id, "Provisioning takes about 10 minutes.")
	require.NoError(t, err)
	assert.Equal(t, "Provisioning takes about 10 minutes.", e.MessageToUser)
	snap, _ := b.srv.Entitlement(id)
	assert.Equal(t, "Provisioning takes about 10 minutes.", snap.MessageToUser)

	// An empty message clears it (sent explicitly, not omitted).
	e, err = b.client.SetMessageToUser(ctx, id, "")
	require.NoError(t, err)
	assert.Empty(t, e.MessageToUser)

	_, err = b.client.ApproveEntitlement(ctx, id, nil)
	require.NoError(t, err)
	_, err = b.client.SetMessageToUser(ctx, id, "too late")
	require.ErrorIs(t, err, procurement.ErrFailedPrecondition)
	assert.Contains(t, err.Error(), "only while the entitlement is ENTITLEMENT_ACTIVATION_REQUESTED or ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL")

	// Allowed again while a plan change waits for approval.
	require.NoError(t, b.srv.RequestPlanChange(ctx, id, "pro"))
	_, err = b.client.SetMessageToUser(ctx, id, "Reviewing your upgrade.")
	require.NoError(t, err)
}

func TestSuspendIsNotSupported(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id := b.active(t)
	err := b.client.SuspendEntitlement(t.Context(), id, &procurement.SuspendEntitlementParams{Reason: "abuse"})
	require.ErrorIs(t, err, procurement.ErrNotImplemented)
	assert.False(t, procurement.IsRetryable(err))
	assert.Equal(t, 1, b.srv.Calls(marketplacetest.MethodEntitlementsSuspend))
}

func TestAutoApprovedOfferIsAlreadyApproved(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	start := b.srv.Clock().Now().Add(48 * time.Hour)
	id := b.purchase(t, marketplacetest.PurchaseParams{AutoApprove: true, StartTime: start, OfferDuration: "P1Y"})
	res, err := b.client.ApproveEntitlement(ctx, id, nil)
	require.NoError(t, err)
	assert.Equal(t, procurement.OutcomeAlreadyDone, res.Outcome)
	assert.Zero(t, b.srv.Calls(marketplacetest.MethodEntitlementsApprove))
}

// Every filter the builder prints is accepted by the emulator's parser,
// which follows AIP-160 and Google's quoting rule strictly.
func TestFiltersParseOnTheEmulator(t *testing.T) {
	t.Parallel()
	b := setup(t)
	filters := []procurement.Filter{
		procurement.FilterAccount("E-1234-5678-ABCD-EFGH"),
		procurement.FilterAccount(b.client.AccountName("a-1")),
		procurement.FilterState(procurement.EntitlementPendingPlanChangeApproval),
		procurement.FilterPlan(`we"ird\plan`),
		procurement.FilterPlan(""),
		procurement.FilterPlan("AND"),
		procurement.FilterNewPendingPlan("pro"),
		procurement.Eq("newPendingPlan", "pro"),
		procurement.FilterProduct("svc.endpoints.p.cloud.goog"),
		procurement.Eq("quote_external_name", "q-1"),
		procurement.FilterOffer("projects/1/services/s/privateOffers/o"),
		procurement.Eq("new_pending_offer", "projects/1/services/s/privateOffers/o"),
		procurement.FilterCustomerBillingAccount("billingAccounts/0000-1111"),
		procurement.Eq("services", "svc.endpoints.p.cloud.goog"),
		procurement.FilterConsumerProject("projects/123"),
		procurement.FilterEverOnOffer("projects/1/services/s/privateOffers/o"),
		procurement.Ne("plan", "foo-plan"),
		procurement.Not(procurement.Not(procurement.FilterPlan("x"))),
		procurement.Or(procurement.And(procurement.FilterPlan("a"), procurement.FilterPlan("b")), procurement.Not(procurement.FilterPlan("c"))),
		procurement.And(procurement.Raw("state=active plan=x"), procurement.Or(procurement.FilterPlan("y"), procurement.FilterPlan("z"))),
	}
	for _, f := range filters {
		_, err := b.client.ListEntitlementsPage(t.Context(), &procurement.ListEntitlementsParams{Filter: f})
		assert.NoError(t, err, "filter %s", f)
	}
}
