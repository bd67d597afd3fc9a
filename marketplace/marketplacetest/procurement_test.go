package marketplacetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	ccp "google.golang.org/api/cloudcommerceprocurement/v1"
)

func TestAccountsGetApproveRejectReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	id, err := s.CreateAccount(ctx)
	require.NoError(t, err)
	name := "providers/acme-provider/accounts/" + id

	for _, view := range []string{"", "ACCOUNT_VIEW_BASIC", "ACCOUNT_VIEW_FULL", "ACCOUNT_VIEW_UNSPECIFIED"} {
		call := svc.Providers.Accounts.Get(name).Context(ctx)
		if view != "" {
			call = call.View(view)
		}
		a, err := call.Do()
		require.NoError(t, err, view)
		assert.Equal(t, name, a.Name)
		assert.Equal(t, "acme-provider", a.Provider)
		assert.Equal(t, "ACCOUNT_ACTIVE", a.State)
		require.Len(t, a.Approvals, 1)
		assert.Equal(t, "signup", a.Approvals[0].Name)
		assert.Equal(t, "PENDING", a.Approvals[0].State)
		assert.Equal(t, "2026-01-05T09:00:00Z", a.CreateTime)
	}
	_, err = svc.Providers.Accounts.Get(name).View("ACCOUNT_VIEW_HUGE").Context(ctx).Do()
	requireAPIError(t, err, 400, "INVALID_ARGUMENT")

	// Reject with an over-long reason: truncated to 256 bytes, as documented.
	_, err = svc.Providers.Accounts.Reject(name, &ccp.RejectAccountRequest{ApprovalName: "signup", Reason: strings.Repeat("r", 300)}).Context(ctx).Do()
	require.NoError(t, err)
	a, ok := s.Account(id)
	require.True(t, ok)
	assert.Equal(t, "REJECTED", a.Approvals[0].State)
	assert.Len(t, a.Approvals[0].Reason, 256)
	_, err = svc.Providers.Accounts.Reject(name, &ccp.RejectAccountRequest{ApprovalName: "signup"}).Context(ctx).Do()
	requireAPIError(t, err, 400, "FAILED_PRECONDITION")

	// A rejected approval can later be approved; approvalName may be omitted.
	_, err = svc.Providers.Accounts.Approve(name, &ccp.ApproveAccountRequest{}).Context(ctx).Do()
	require.NoError(t, err)
	got, err := svc.Providers.Accounts.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "APPROVED", got.Approvals[0].State)
	gerr := requireAPIError(t, doErr(svc.Providers.Accounts.Approve(name, &ccp.ApproveAccountRequest{ApprovalName: "signup"}).Context(ctx).Do()), 400, "FAILED_PRECONDITION")
	assert.Equal(t, "Precondition check failed.", gerr.Message)
	_, err = svc.Providers.Accounts.Approve(name, &ccp.ApproveAccountRequest{ApprovalName: "billing"}).Context(ctx).Do()
	requireAPIError(t, err, 400, "INVALID_ARGUMENT")

	// Reset: approval back to PENDING, live entitlements cancelled.
	entID, err := s.Purchase(ctx, PurchaseParams{AccountID: id})
	require.NoError(t, err)
	_, err = svc.Providers.Entitlements.Approve(s.entitlementName(entID), &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()
	require.NoError(t, err)
	_, err = svc.Providers.Accounts.Reset(name, &ccp.ResetAccountRequest{}).Context(ctx).Do()
	require.NoError(t, err)
	got, err = svc.Providers.Accounts.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "PENDING", got.Approvals[0].State)
	ent, err := svc.Providers.Entitlements.Get(s.entitlementName(entID)).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "ENTITLEMENT_CANCELLED", ent.State)
	assert.Equal(t, []string{"ENTITLEMENT_CREATION_REQUESTED", "ENTITLEMENT_ACTIVE", "ENTITLEMENT_CANCELLED"}, eventTypesFor(s, entID))

	for _, m := range []Method{MethodAccountsGet, MethodAccountsApprove, MethodAccountsReject, MethodAccountsReset} {
		assert.Positive(t, s.Calls(m), m)
	}
}

func doErr[T any](_ T, err error) error { return err }

func TestNotFoundAndWrongProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	entID, err := s.Purchase(ctx, PurchaseParams{})
	require.NoError(t, err)
	acctID := s.Entitlements()[0].AccountID

	missing := "providers/acme-provider/entitlements/nope"
	requireAPIError(t, doErr(svc.Providers.Entitlements.Get(missing).Context(ctx).Do()), 404, "NOT_FOUND")
	requireAPIError(t, doErr(svc.Providers.Entitlements.Approve(missing, &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()), 404, "NOT_FOUND")
	requireAPIError(t, doErr(svc.Providers.Entitlements.Suspend(missing, &ccp.SuspendEntitlementRequest{}).Context(ctx).Do()), 404, "NOT_FOUND")
	requireAPIError(t, doErr(svc.Providers.Accounts.Get("providers/acme-provider/accounts/nope").Context(ctx).Do()), 404, "NOT_FOUND")

	other := "providers/other-provider/"
	requireAPIError(t, doErr(svc.Providers.Entitlements.Get(other+"entitlements/"+entID).Context(ctx).Do()), 403, "PERMISSION_DENIED")
	requireAPIError(t, doErr(svc.Providers.Accounts.Get(other+"accounts/"+acctID).Context(ctx).Do()), 403, "PERMISSION_DENIED")
	requireAPIError(t, doErr(svc.Providers.Entitlements.List("providers/other-provider").Context(ctx).Do()), 403, "PERMISSION_DENIED")

	// suspend is "not yet supported".
	requireAPIError(t, doErr(svc.Providers.Entitlements.Suspend(s.entitlementName(entID), &ccp.SuspendEntitlementRequest{Reason: "x"}).Context(ctx).Do()), 501, "UNIMPLEMENTED")
}

func TestEntitlementApproveLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	acct, err := s.CreateAccount(ctx)
	require.NoError(t, err)
	entID, err := s.Purchase(ctx, PurchaseParams{AccountID: acct, Plan: "pro", UsageBased: true})
	require.NoError(t, err)
	name := s.entitlementName(entID)

	e, err := svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "ENTITLEMENT_ACTIVATION_REQUESTED", e.State)
	assert.Equal(t, "providers/acme-provider/accounts/"+acct, e.Account)
	assert.Equal(t, "pro", e.Plan)
	assert.Equal(t, s.ServiceName(), e.ProductExternalName)
	assert.True(t, strings.HasPrefix(e.UsageReportingId, "project_number:"), e.UsageReportingId)
	require.Len(t, e.Consumers, 1)
	assert.Equal(t, "projects/"+strings.TrimPrefix(e.UsageReportingId, "project_number:"), e.Consumers[0].Project)
	assert.Equal(t, entID, e.OrderId)

	// Before sign-up: 400 Precondition check failed.
	gerr := requireAPIError(t, doErr(svc.Providers.Entitlements.Approve(name, &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()), 400, "FAILED_PRECONDITION")
	assert.Equal(t, "Precondition check failed.", gerr.Message)

	// messageToUser can be set while activation is requested.
	patched, err := svc.Providers.Entitlements.Patch(name, &ccp.Entitlement{MessageToUser: "Provisioning, about 2 days"}).UpdateMask("messageToUser").Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "Provisioning, about 2 days", patched.MessageToUser)
	assert.Greater(t, patched.UpdateTime, e.UpdateTime, "updateTime advances even though the clock did not move")

	_, err = svc.Providers.Accounts.Approve(s.accountName(acct), &ccp.ApproveAccountRequest{ApprovalName: "signup"}).Context(ctx).Do()
	require.NoError(t, err)
	_, err = svc.Providers.Entitlements.Approve(name, &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()
	require.NoError(t, err)
	active, err := svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", active.State)
	assert.Empty(t, active.MessageToUser, "messageToUser is cleared on a state change")
	assert.Greater(t, active.UpdateTime, patched.UpdateTime)

	// Approving twice, rejecting an active one, patching an active one: wrong state.
	requireAPIError(t, doErr(svc.Providers.Entitlements.Approve(name, &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()), 400, "FAILED_PRECONDITION")
	requireAPIError(t, doErr(svc.Providers.Entitlements.Reject(name, &ccp.RejectEntitlementRequest{}).Context(ctx).Do()), 400, "FAILED_PRECONDITION")
	requireAPIError(t, doErr(svc.Providers.Entitlements.Patch(name, &ccp.Entitlement{MessageToUser: "x"}).UpdateMask("messageToUser").Context(ctx).Do()), 400, "FAILED_PRECONDITION")
	requireAPIError(t, doErr(svc.Providers.Entitlements.ApprovePlanChange(name, &ccp.ApproveEntitlementPlanChangeRequest{PendingPlanName: "pro"}).Context(ctx).Do()), 400, "FAILED_PRECONDITION")

	assert.Equal(t, []string{"ENTITLEMENT_CREATION_REQUESTED", "ENTITLEMENT_ACTIVE"}, eventTypesFor(s, entID))
}

func TestEntitlementRejectRemoves(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	entID, err := s.Purchase(ctx, PurchaseParams{})
	require.NoError(t, err)
	_, err = svc.Providers.Entitlements.Reject(s.entitlementName(entID), &ccp.RejectEntitlementRequest{Reason: strings.Repeat("é", 200)}).Context(ctx).Do()
	require.NoError(t, err)
	requireAPIError(t, doErr(svc.Providers.Entitlements.Get(s.entitlementName(entID)).Context(ctx).Do()), 404, "NOT_FOUND")
	assert.Equal(t, []string{"ENTITLEMENT_CREATION_REQUESTED", "ENTITLEMENT_CANCELLED", "ENTITLEMENT_DELETED"}, eventTypesFor(s, entID))
}

// A replacement offer on the same plan is a plan change whose
// newPendingOffer becomes the offer once approved; withdrawn, the offer
// stays.
func TestOfferReplacement(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	acct := approvedAccount(t, s, svc)
	const first, second, third = "projects/1/services/s/privateOffers/first", "projects/1/services/s/privateOffers/second", "projects/1/services/s/privateOffers/third"
	entID, err := s.Purchase(ctx, PurchaseParams{AccountID: acct, Plan: "basic", Offer: first})
	require.NoError(t, err)
	name := s.entitlementName(entID)
	_, err = svc.Providers.Entitlements.Approve(name, &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()
	require.NoError(t, err)

	require.ErrorIs(t, s.RequestOfferChange(ctx, entID, "basic", ""), ErrInvalidParams)
	require.NoError(t, s.RequestOfferChange(ctx, entID, "basic", second))
	e, err := svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL", e.State)
	assert.Equal(t, "basic", e.NewPendingPlan)
	assert.Equal(t, second, e.NewPendingOffer)
	assert.Equal(t, first, e.Offer)
	_, err = svc.Providers.Entitlements.ApprovePlanChange(name, &ccp.ApproveEntitlementPlanChangeRequest{PendingPlanName: "basic"}).Context(ctx).Do()
	require.NoError(t, err)
	e, err = svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", e.State)
	assert.Equal(t, second, e.Offer)
	assert.Empty(t, e.NewPendingOffer)

	require.NoError(t, s.RequestOfferChange(ctx, entID, "basic", third))
	require.NoError(t, s.CancelPlanChange(ctx, entID))
	e, err = svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", e.State)
	assert.Equal(t, second, e.Offer)
	assert.Empty(t, e.NewPendingOffer)
	assert.Equal(t, []string{"ENTITLEMENT_CREATION_REQUESTED", "ENTITLEMENT_ACTIVE", "ENTITLEMENT_PLAN_CHANGE_REQUESTED",
		"ENTITLEMENT_PLAN_CHANGED", "ENTITLEMENT_PLAN_CHANGE_REQUESTED", "ENTITLEMENT_PLAN_CHANGE_CANCELLED"}, eventTypesFor(s, entID))
}

func TestPlanChangeApproveReject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	acct := approvedAccount(t, s, svc)
	entID, err := s.Purchase(ctx, PurchaseParams{AccountID: acct, Plan: "basic"})
	require.NoError(t, err)
	name := s.entitlementName(entID)
	_, err = svc.Providers.Entitlements.Approve(name, &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()
	require.NoError(t, err)

	require.NoError(t, s.RequestPlanChange(ctx, entID, "pro"))
	e, err := svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL", e.State)
	assert.Equal(t, "pro", e.NewPendingPlan)
	assert.Equal(t, "basic", e.Plan)

	// messageToUser is writable in PENDING_PLAN_CHANGE_APPROVAL.
	_, err = svc.Providers.Entitlements.Patch(name, &ccp.Entitlement{MessageToUser: "soon"}).UpdateMask("message_to_user").Context(ctx).Do()
	require.NoError(t, err)

	requireAPIError(t, doErr(svc.Providers.Entitlements.ApprovePlanChange(name, &ccp.ApproveEntitlementPlanChangeRequest{}).Context(ctx).Do()), 400, "INVALID_ARGUMENT")
	requireAPIError(t, doErr(svc.Providers.Entitlements.ApprovePlanChange(name, &ccp.ApproveEntitlementPlanChangeRequest{PendingPlanName: "ultimate"}).Context(ctx).Do()), 400, "FAILED_PRECONDITION")
	_, err = svc.Providers.Entitlements.ApprovePlanChange(name, &ccp.ApproveEntitlementPlanChangeRequest{PendingPlanName: "pro"}).Context(ctx).Do()
	require.NoError(t, err)
	e, err = svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", e.State)
	assert.Equal(t, "pro", e.Plan)
	assert.Empty(t, e.NewPendingPlan)
	assert.Empty(t, e.MessageToUser)

	// Reject a second change: stays ACTIVE on the old plan.
	require.NoError(t, s.RequestPlanChange(ctx, entID, "ultimate"))
	requireAPIError(t, doErr(svc.Providers.Entitlements.RejectPlanChange(name, &ccp.RejectEntitlementPlanChangeRequest{}).Context(ctx).Do()), 400, "INVALID_ARGUMENT")
	_, err = svc.Providers.Entitlements.RejectPlanChange(name, &ccp.RejectEntitlementPlanChangeRequest{PendingPlanName: "ultimate", Reason: "no"}).Context(ctx).Do()
	require.NoError(t, err)
	e, err = svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", e.State)
	assert.Equal(t, "pro", e.Plan)
	requireAPIError(t, doErr(svc.Providers.Entitlements.RejectPlanChange(name, &ccp.RejectEntitlementPlanChangeRequest{PendingPlanName: "ultimate"}).Context(ctx).Do()), 400, "FAILED_PRECONDITION")

	// At term end: approve → PENDING_PLAN_CHANGE, applied by EndTerm.
	s.SetPlanChangeAtTermEnd(true)
	require.NoError(t, s.RequestPlanChange(ctx, entID, "ultimate"))
	_, err = svc.Providers.Entitlements.ApprovePlanChange(name, &ccp.ApproveEntitlementPlanChangeRequest{PendingPlanName: "ultimate"}).Context(ctx).Do()
	require.NoError(t, err)
	e, err = svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "ENTITLEMENT_PENDING_PLAN_CHANGE", e.State)
	assert.Equal(t, "ultimate", e.NewPendingPlan)
	assert.NotEmpty(t, e.NewOfferStartTime)
	require.NoError(t, s.EndTerm(ctx, entID))
	e, err = svc.Providers.Entitlements.Get(name).Context(ctx).Do()
	require.NoError(t, err)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", e.State)
	assert.Equal(t, "ultimate", e.Plan)
	assert.Empty(t, e.NewOfferStartTime)

	assert.Equal(t, []string{
		"ENTITLEMENT_CREATION_REQUESTED", "ENTITLEMENT_ACTIVE",
		"ENTITLEMENT_PLAN_CHANGE_REQUESTED", "ENTITLEMENT_PLAN_CHANGED",
		"ENTITLEMENT_PLAN_CHANGE_REQUESTED", "ENTITLEMENT_PLAN_CHANGE_CANCELLED",
		"ENTITLEMENT_PLAN_CHANGE_REQUESTED", "ENTITLEMENT_PLAN_CHANGED",
	}, eventTypesFor(s, entID))
}

func TestPatchAndBodyValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	entID, err := s.Purchase(ctx, PurchaseParams{})
	require.NoError(t, err)
	name := s.entitlementName(entID)

	for _, mask := range []string{"plan", "messageToUser,state"} {
		call := svc.Providers.Entitlements.Patch(name, &ccp.Entitlement{MessageToUser: "x"}).Context(ctx).UpdateMask(mask)
		requireAPIError(t, doErr(call.Do()), 400, "INVALID_ARGUMENT")
	}

	bad := procurementClient(t, s, withExtraField(s, "bogusField"))
	gerr := requireAPIError(t, doErr(bad.Providers.Entitlements.Approve(name, &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()), 400, "INVALID_ARGUMENT")
	assert.Contains(t, gerr.Message, `Unknown name "bogusField"`)
	requireAPIError(t, doErr(bad.Providers.Entitlements.Patch(name, &ccp.Entitlement{MessageToUser: "x"}).UpdateMask("messageToUser").Context(ctx).Do()), 400, "INVALID_ARGUMENT")
	requireAPIError(t, doErr(bad.Providers.Accounts.Approve(s.Entitlements()[0].Account, &ccp.ApproveAccountRequest{}).Context(ctx).Do()), 400, "INVALID_ARGUMENT")
	e, _ := s.Entitlement(entID)
	assert.Empty(t, e.MessageToUser, "a rejected request changes nothing")
}

func TestListPaging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	var want []string
	for range 30 {
		id, err := s.CreateAccount(ctx)
		require.NoError(t, err)
		want = append(want, s.accountName(id))
	}
	// Default page size 25.
	page, err := svc.Providers.Accounts.List("providers/acme-provider").Context(ctx).Do()
	require.NoError(t, err)
	assert.Len(t, page.Accounts, 25)
	assert.NotEmpty(t, page.NextPageToken)

	var got []string
	tok := ""
	pages := 0
	for {
		p, err := svc.Providers.Accounts.List("providers/acme-provider").PageSize(7).PageToken(tok).Context(ctx).Do()
		require.NoError(t, err)
		pages++
		for _, a := range p.Accounts {
			got = append(got, a.Name)
		}
		if p.NextPageToken == "" {
			break
		}
		tok = p.NextPageToken
	}
	assert.Equal(t, want, got)
	assert.Equal(t, 5, pages)

	requireAPIError(t, doErr(svc.Providers.Accounts.List("providers/acme-provider").PageToken("garbage!").Context(ctx).Do()), 400, "INVALID_ARGUMENT")
	requireAPIError(t, doErr(svc.Providers.Accounts.List("providers/acme-provider").PageSize(-1).Context(ctx).Do()), 400, "INVALID_ARGUMENT")

	// Entitlements: paging through Pages, with a filter.
	acct := s.Accounts()[0].ID
	var ents []string
	for i := range 5 {
		id, err := s.Purchase(ctx, PurchaseParams{AccountID: acct, Plan: fmt.Sprintf("plan-%d", i%2)})
		require.NoError(t, err)
		ents = append(ents, s.entitlementName(id))
	}
	_, err = s.Purchase(ctx, PurchaseParams{Plan: "plan-0"}) // another account
	require.NoError(t, err)
	var listed []string
	calls := 0
	err = svc.Providers.Entitlements.List("providers/acme-provider").Filter(`account="`+acct+`"`).PageSize(2).Pages(ctx, func(r *ccp.ListEntitlementsResponse) error {
		calls++
		for _, e := range r.Entitlements {
			listed = append(listed, e.Name)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, ents, listed)
	assert.Equal(t, 3, calls)

	r, err := svc.Providers.Entitlements.List("providers/acme-provider").Filter(`plan="plan-0" state=activation_requested`).Context(ctx).Do()
	require.NoError(t, err)
	assert.Len(t, r.Entitlements, 4)

	// A token is bound to its filter; a bad filter is INVALID_ARGUMENT.
	p1, err := svc.Providers.Entitlements.List("providers/acme-provider").Filter(`account="` + acct + `"`).PageSize(2).Context(ctx).Do()
	require.NoError(t, err)
	requireAPIError(t, doErr(svc.Providers.Entitlements.List("providers/acme-provider").PageToken(p1.NextPageToken).Context(ctx).Do()), 400, "INVALID_ARGUMENT")
	requireAPIError(t, doErr(svc.Providers.Entitlements.List("providers/acme-provider").Filter("plan=(").Context(ctx).Do()), 400, "INVALID_ARGUMENT")
	requireAPIError(t, doErr(svc.Providers.Entitlements.List("providers/acme-provider").Filter("color=red").Context(ctx).Do()), 400, "INVALID_ARGUMENT")
}

func TestUpdateTimeStrictlyIncreases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	entID, err := s.Purchase(ctx, PurchaseParams{AutoApprove: true})
	require.NoError(t, err)
	var last time.Time
	step := func() {
		e, ok := s.Entitlement(entID)
		require.True(t, ok)
		require.True(t, e.UpdateTime.After(last), "updateTime %v not after %v", e.UpdateTime, last)
		last = e.UpdateTime
	}
	step()
	require.NoError(t, s.Cancel(ctx, entID, false))
	step()
	require.NoError(t, s.RevertCancellation(ctx, entID))
	step()
	require.NoError(t, s.EndTerm(ctx, entID))
	step()
	// Published updateTime matches the resource.
	evs := s.Published()
	assert.Contains(t, string(evs[len(evs)-1].Data), formatTimestamp(last))
}

func TestFormatTimestamp(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		ns   int
		want string
	}{
		{0, "2026-01-02T03:04:05Z"},
		{5e8, "2026-01-02T03:04:05.500Z"},
		{123456000, "2026-01-02T03:04:05.123456Z"},
		{123456789, "2026-01-02T03:04:05.123456789Z"},
	} {
		assert.Equal(t, tc.want, formatTimestamp(base.Add(time.Duration(tc.ns))))
	}
	assert.Empty(t, formatTimestamp(time.Time{}))
}
