package marketplacetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	ccp "google.golang.org/api/cloudcommerceprocurement/v1"
)

// activeEntitlement buys and approves an entitlement through the API.
func activeEntitlement(t *testing.T, s *Server, svc *ccp.Service, p PurchaseParams) string {
	t.Helper()
	ctx := context.Background()
	if p.AccountID == "" {
		p.AccountID = approvedAccount(t, s, svc)
	}
	id, err := s.Purchase(ctx, p)
	require.NoError(t, err)
	_, err = svc.Providers.Entitlements.Approve(s.EntitlementName(id), &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()
	require.NoError(t, err)
	return id
}

func getState(t *testing.T, svc *ccp.Service, s *Server, id string) *ccp.Entitlement {
	t.Helper()
	e, err := svc.Providers.Entitlements.Get(s.EntitlementName(id)).Context(context.Background()).Do()
	require.NoError(t, err)
	return e
}

func TestCancellationFlows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)

	// Pending cancellation, reverted, then cancelled at term end, then deleted.
	id := activeEntitlement(t, s, svc, PurchaseParams{})
	require.NoError(t, s.Cancel(ctx, id, false))
	assert.Equal(t, "ENTITLEMENT_PENDING_CANCELLATION", getState(t, svc, s, id).State)
	require.ErrorIs(t, s.Cancel(ctx, id, false), ErrWrongState)
	require.NoError(t, s.RevertCancellation(ctx, id))
	assert.Equal(t, "ENTITLEMENT_ACTIVE", getState(t, svc, s, id).State)
	require.ErrorIs(t, s.RevertCancellation(ctx, id), ErrWrongState)
	require.ErrorIs(t, s.DeleteEntitlement(ctx, id), ErrWrongState)
	require.NoError(t, s.Cancel(ctx, id, false))
	require.NoError(t, s.EndTerm(ctx, id))
	e := getState(t, svc, s, id)
	assert.Equal(t, "ENTITLEMENT_CANCELLED", e.State)
	assert.Equal(t, "user-cancelled", e.CancellationReason)
	require.ErrorIs(t, s.RevertCancellation(ctx, id), ErrWrongState, "a final cancellation cannot be reverted")
	require.NoError(t, s.DeleteEntitlement(ctx, id))
	requireAPIError(t, doErr(svc.Providers.Entitlements.Get(s.EntitlementName(id)).Context(ctx).Do()), 404, "NOT_FOUND")
	require.ErrorIs(t, s.DeleteEntitlement(ctx, id), ErrNotFound)
	assert.Equal(t, []string{
		"ENTITLEMENT_CREATION_REQUESTED", "ENTITLEMENT_ACTIVE",
		"ENTITLEMENT_PENDING_CANCELLATION", "ENTITLEMENT_CANCELLATION_REVERTED",
		"ENTITLEMENT_PENDING_CANCELLATION", "ENTITLEMENT_CANCELLED", "ENTITLEMENT_DELETED",
	}, eventTypesFor(s, id))

	// Immediate cancellation.
	id2 := activeEntitlement(t, s, svc, PurchaseParams{})
	require.NoError(t, s.Cancel(ctx, id2, true))
	assert.Equal(t, "ENTITLEMENT_CANCELLED", getState(t, svc, s, id2).State)
	assert.Equal(t, []string{"ENTITLEMENT_CREATION_REQUESTED", "ENTITLEMENT_ACTIVE", "ENTITLEMENT_CANCELLING", "ENTITLEMENT_CANCELLED"}, eventTypesFor(s, id2))

	// A customer withdrawing a plan change.
	id3 := activeEntitlement(t, s, svc, PurchaseParams{})
	require.NoError(t, s.RequestPlanChange(ctx, id3, "pro"))
	require.NoError(t, s.CancelPlanChange(ctx, id3))
	e = getState(t, svc, s, id3)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", e.State)
	assert.Empty(t, e.NewPendingPlan)
	require.ErrorIs(t, s.CancelPlanChange(ctx, id3), ErrWrongState)

	// Aborting a purchase before approval.
	id4, err := s.Purchase(ctx, PurchaseParams{})
	require.NoError(t, err)
	require.ErrorIs(t, s.Cancel(ctx, id4, false), ErrWrongState)
	require.NoError(t, s.Cancel(ctx, id4, true))
	assert.Equal(t, "user-aborted", getState(t, svc, s, id4).CancellationReason)

	var wse *wrongStateError
	require.True(t, errors.As(s.EndTerm(ctx, id4), &wse))
	require.ErrorIs(t, s.Cancel(ctx, "nope", true), ErrNotFound)
}

func TestDeleteAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	acct := approvedAccount(t, s, svc)
	a := activeEntitlement(t, s, svc, PurchaseParams{AccountID: acct})
	b, err := s.Purchase(ctx, PurchaseParams{AccountID: acct})
	require.NoError(t, err)
	require.NoError(t, s.Cancel(ctx, b, true))

	require.NoError(t, s.DeleteAccount(ctx, acct))
	requireAPIError(t, doErr(svc.Providers.Accounts.Get(s.AccountName(acct)).Context(ctx).Do()), 404, "NOT_FOUND")
	requireAPIError(t, doErr(svc.Providers.Entitlements.Get(s.EntitlementName(a)).Context(ctx).Do()), 404, "NOT_FOUND")
	assert.Equal(t, []string{"ENTITLEMENT_CREATION_REQUESTED", "ENTITLEMENT_ACTIVE", "ENTITLEMENT_CANCELLED", "ENTITLEMENT_DELETED"}, eventTypesFor(s, a))
	evs := s.Published()
	last := evs[len(evs)-1]
	assert.Equal(t, "ACCOUNT_DELETED", last.EventType)
	var msg map[string]any
	require.NoError(t, json.Unmarshal(last.Data, &msg))
	assert.Equal(t, "ACCOUNT_DELETED", msg["eventType"])
	assert.Equal(t, acct, msg["account"].(map[string]any)["id"])
	require.ErrorIs(t, s.DeleteAccount(ctx, acct), ErrNotFound)
}

func TestAutoApprovedScheduledStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	start := s.Clock().Now().Add(36 * time.Hour)
	offer := "projects/123/services/" + s.ServiceName() + "/privateOffers/offer-1"
	id, err := s.Purchase(ctx, PurchaseParams{AutoApprove: true, StartTime: start, Offer: offer, OfferDuration: "P1Y", Plan: "enterprise"})
	require.NoError(t, err)

	e := getState(t, svc, s, id)
	assert.Equal(t, "ENTITLEMENT_ACTIVATION_REQUESTED", e.State)
	assert.Equal(t, "2026-01-06T21:00:00Z", e.NewOfferStartTime)
	assert.Equal(t, "2027-01-06T21:00:00Z", e.OfferEndTime)
	assert.Equal(t, offer, e.Offer)
	// Already approved by Google: the provider cannot approve again.
	requireAPIError(t, doErr(svc.Providers.Entitlements.Approve(s.EntitlementName(id), &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()), 400, "FAILED_PRECONDITION")

	var msg struct {
		EventID     string         `json:"eventId"`
		EventType   string         `json:"eventType"`
		ProviderID  string         `json:"providerId"`
		Entitlement map[string]any `json:"entitlement"`
	}
	require.NoError(t, json.Unmarshal(s.Published()[1].Data, &msg))
	assert.Equal(t, "ENTITLEMENT_OFFER_ACCEPTED", msg.EventType)
	assert.Equal(t, "2026-01-06T21:00:00Z", msg.Entitlement["newOfferStartTime"])
	assert.Equal(t, "2027-01-06T21:00:00Z", msg.Entitlement["newOfferEndTime"])
	assert.Equal(t, "P1Y", msg.Entitlement["newPendingOfferDuration"])
	assert.Equal(t, "enterprise", msg.Entitlement["newPlan"])
	assert.Equal(t, offer, msg.Entitlement["newOffer"])
	assert.Equal(t, id, msg.Entitlement["orderId"])
	// The real capture (google-apis.md §1.2) carries newProduct (the offer)
	// and entitlementBenefitIds.
	assert.Equal(t, offer, msg.Entitlement["newProduct"])
	assert.Equal(t, []any{e.EntitlementBenefitIds[0]}, msg.Entitlement["entitlementBenefitIds"])

	s.Clock().Advance(35 * time.Hour)
	assert.Equal(t, "ENTITLEMENT_ACTIVATION_REQUESTED", getState(t, svc, s, id).State)
	s.Clock().Advance(time.Hour) // crosses the start: the scheduler runs synchronously
	ent, ok := s.Entitlement(id)
	require.True(t, ok)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", ent.State)
	e = getState(t, svc, s, id)
	assert.Empty(t, e.NewOfferStartTime, "newOfferStartTime is not set in ACTIVE")
	assert.Equal(t, []string{"ENTITLEMENT_OFFER_ACCEPTED", "ENTITLEMENT_ACTIVE"}, eventTypesFor(s, id))

	// Auto-approval replaces PLAN_CHANGE_REQUESTED with OFFER_ACCEPTED.
	require.NoError(t, s.RequestPlanChange(ctx, id, "enterprise-plus"))
	assert.Equal(t, "enterprise-plus", getState(t, svc, s, id).Plan)
	assert.Equal(t, []string{"ENTITLEMENT_OFFER_ACCEPTED", "ENTITLEMENT_ACTIVE", "ENTITLEMENT_OFFER_ACCEPTED", "ENTITLEMENT_PLAN_CHANGED"}, eventTypesFor(s, id))

	// Renewal moves the term end.
	require.NoError(t, s.EndTerm(ctx, id))
	assert.Equal(t, "2028-01-06T21:00:00Z", getState(t, svc, s, id).OfferEndTime)
}

func TestApprovedWithFutureStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	acct := approvedAccount(t, s, svc)
	start := s.Clock().Now().Add(2 * time.Hour)
	id, err := s.Purchase(ctx, PurchaseParams{AccountID: acct, StartTime: start})
	require.NoError(t, err)
	_, err = svc.Providers.Entitlements.Approve(s.EntitlementName(id), &ccp.ApproveEntitlementRequest{}).Context(ctx).Do()
	require.NoError(t, err)
	e := getState(t, svc, s, id)
	assert.Equal(t, "ENTITLEMENT_ACTIVATION_REQUESTED", e.State)
	assert.Equal(t, formatTimestamp(start), e.NewOfferStartTime)
	require.NoError(t, s.Clock().Set(start))
	assert.Equal(t, "ENTITLEMENT_ACTIVE", getState(t, svc, s, id).State)
}

func TestPrivateOfferFixedEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	svc := procurementClient(t, s)
	end := time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)
	offer := "projects/123/services/svc/privateOffers/po-9"
	id := activeEntitlement(t, s, svc, PurchaseParams{Offer: offer, OfferEndTime: end})

	var msg struct {
		Entitlement map[string]*string `json:"entitlement"`
	}
	require.NoError(t, json.Unmarshal(s.Published()[1].Data, &msg))
	require.NotNil(t, msg.Entitlement["newOfferDuration"])
	assert.Empty(t, *msg.Entitlement["newOfferDuration"], "exactly one of duration and end time is set")
	assert.Equal(t, "2026-06-30T00:00:00Z", *msg.Entitlement["newOfferEndTime"])

	assert.Equal(t, "2026-06-30T00:00:00Z", getState(t, svc, s, id).OfferEndTime)
	require.NoError(t, s.EndTerm(ctx, id))
	e := getState(t, svc, s, id)
	assert.Equal(t, "ENTITLEMENT_ACTIVE", e.State)
	assert.Empty(t, e.Offer)
	assert.Equal(t, "ENTITLEMENT_OFFER_ENDED", eventTypesFor(s, id)[2])

	r, err := svc.Providers.Entitlements.List("providers/acme-provider").Filter(`change_history.new_offer:"` + offer + `"`).Context(ctx).Do()
	require.NoError(t, err)
	assert.Len(t, r.Entitlements, 1)
}

func TestPurchaseParamsValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(t)
	_, err := s.Purchase(ctx, PurchaseParams{OfferDuration: "1 year"})
	require.ErrorIs(t, err, ErrInvalidParams)
	_, err = s.Purchase(ctx, PurchaseParams{OfferDuration: "P1Y", OfferEndTime: time.Now()})
	require.ErrorIs(t, err, ErrInvalidParams)
	_, err = s.Purchase(ctx, PurchaseParams{AccountID: "nope"})
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, s.RequestPlanChange(ctx, "x", ""), ErrInvalidParams)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.CreateAccount(cctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestParseYearMonthDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][2]int{"P1Y": {1, 0}, "P2Y3M": {2, 3}, "P6M": {0, 6}} {
		y, m, ok := parseYearMonthDuration(in)
		require.True(t, ok, in)
		assert.Equal(t, want, [2]int{y, m}, in)
	}
	for _, in := range []string{"", "P", "1Y", "P1D", "PY", "P1Y2"} {
		_, _, ok := parseYearMonthDuration(in)
		assert.False(t, ok, in)
	}
}
